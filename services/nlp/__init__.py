"""The nlp service. Entity extraction, classification and embeddings (document issue)."""
