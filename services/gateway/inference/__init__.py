"""The gateway's inference plane: Triton behind one async gRPC client, model control, KServe v2."""
