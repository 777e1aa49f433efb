"""A line-of-business system hands a document to Hearth.

The bytes go to the blob store (claim check); the event carries the reference. Publishing the
same event id twice stores it once: pass --event-id to make a retry safe.

It connects as HEARTH_NATS_USER (default the administrator `hearth`): the claim check writes the
blob store, which a `lob-<name>` publisher may not (README "NATS credentials": such a system sends
small documents inline and larger ones through POST /v1/documents).
"""

from __future__ import annotations

import argparse
import asyncio
import mimetypes
import uuid
from pathlib import Path

from shared.blobstore import BlobStore
from shared.bus import Bus
from shared.events import DocumentSubmitted, Envelope


async def publish(path: Path, source_system: str, external_id: str | None, event_id: str) -> None:
    async with await Bus.connect(name=f"{source_system}-publisher") as bus:
        blobs = await BlobStore.create(bus.js)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as stream:
            ref = await blobs.put(stream, content_type=content_type)
        data = DocumentSubmitted(
            blob=ref,
            filename=path.name,
            content_type=content_type,
            source_system=source_system,
            external_id=external_id,
        )
        event = Envelope.new("hearth.ingest.document.v1", data, source=f"lob/{source_system}", subject=external_id)
        event = event.model_copy(update={"id": event_id})  # a retry reuses the id: stored once
        ack = await bus.publish(event)
    print(f"event {event.id} -> stream {ack.stream} seq {ack.seq} duplicate={bool(ack.duplicate)}")
    print(f"blob {ref.bucket}/{ref.key} {ref.size} bytes sha256={ref.sha256}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--source-system", default="erp")
    parser.add_argument("--external-id")
    parser.add_argument("--event-id", default=str(uuid.uuid4()), help="reuse it when retrying a publish")
    args = parser.parse_args()
    asyncio.run(publish(args.file, args.source_system, args.external_id, args.event_id))


if __name__ == "__main__":
    main()
