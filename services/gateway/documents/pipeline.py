"""The document path: submissions become ``document_processing`` runs; finished runs become results.

* ``submit`` records a document in ``raw_docs`` and starts the processing workflow with run id
  ``doc-<document id>`` (so a repeated submission never starts a second run). REST uploads and
  ``hearth.ingest.document.v1`` events (consumer ``documents-ingest``) both come here; an event's
  document id derives from the event id, and a publisher's ``(source_system, external_id)`` maps a
  re-sent document onto the one already held.
* ``on_run_finished`` (consumer ``documents-results`` on ``hearth.workflow.completed.v1`` and
  ``failed.v1``) stores what the run found in ``processed_docs`` and publishes
  ``hearth.document.processed.v1``. Results are found by what they are (an OCR result, an
  analysis), not by step ids, so a user's own processing workflow works the same way.

The workflow file stays the seed's example verbatim: it declares no trigger and no storing step.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Final

from pydantic import ValidationError

from services.gateway.documents.search import SearchIndex
from services.gateway.documents.store import DocumentStore, DocumentSummary, NewDocument, PageSummary, Processed
from shared.blobstore import BlobStore
from shared.bus import Bus
from shared.documents import DocumentSource, ExtractedDocument, TextAnalyzed, TextExtracted
from shared.errors import HearthError, NotFound
from shared.events.catalog import DocumentSubmitted
from shared.events.consumer import EventConsumer
from shared.events.documents import DocumentProcessed
from shared.events.envelope import Envelope
from shared.events.workflow import WorkflowCompleted, WorkflowFailed
from shared.identity.authz import DEFAULT_SENSITIVITY, Sensitivity
from shared.logging import get_logger
from workflows.runs import RunService

log = get_logger("gateway.documents")

DEFAULT_WORKFLOW: Final = "document_processing"
SOURCE: Final = "hearth/documents"
EVENT_ENTITY_FIELDS: Final = frozenset({"contract_type"})
"""Entities whose normalised values ``hearth.document.processed.v1`` carries: a closed vocabulary, no document text."""
_NAMESPACE: Final = uuid.UUID("0c5d1f0e-4a9b-4f3e-8d7a-2b6c9e1f3a57")


def document_id_for_event(event_id: str) -> str:
    """The document an ingest event creates: the same for every delivery of that event."""
    return str(uuid.uuid5(_NAMESPACE, f"ingest/{event_id}"))


def run_id_for(document_id: str) -> str:
    return f"doc-{document_id}"


class DocumentPipeline:
    def __init__(
        self,
        store: DocumentStore,
        runs: RunService,
        bus: Bus,
        blobs: BlobStore,
        index: SearchIndex,
        *,
        workflow: str = DEFAULT_WORKFLOW,
    ) -> None:
        self.index = index
        self.store = store
        self.runs = runs
        self.bus = bus
        self.blobs = blobs
        self.workflow = workflow
        self._consumers: list[EventConsumer] = []

    # ---- submissions ------------------------------------------------------------------------

    async def submit(
        self,
        *,
        document_id: str,
        tenant: str,
        source: DocumentSource,
        source_system: str,
        external_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        submitted_by: str | None = None,
        workflow: str | None = None,
        sensitivity: Sensitivity = DEFAULT_SENSITIVITY,
    ) -> tuple[DocumentSummary, bool]:
        """Record the document and start its run; ``(document, created)``. Safe to repeat.

        ``sensitivity`` is the new document's (a known document keeps its own).

        ``workflow`` picks the processing workflow (the pipeline's default, ``document_processing``,
        when omitted); it must exist, or nothing is recorded.
        """
        workflow = workflow or self.workflow
        await self.runs.definition(workflow)  # NotFound before anything is stored
        new = NewDocument(
            id=document_id,
            tenant=tenant,
            source_system=source_system,
            external_id=external_id,
            filename=source.filename,
            content_type=source.content_type,
            blob=source.blob,
            inline_text=source.text,
            metadata=metadata or {},
            workflow=workflow,
            run_id=run_id_for(document_id),
            submitted_by=submitted_by,
            sensitivity=sensitivity,
        )
        doc, created = await self.store.create(new)
        document = {
            **source.model_dump(mode="json", exclude_none=True),
            "source_system": doc.source_system,
            "external_id": doc.external_id,
            "metadata": metadata or {},
        }
        # Started (again) even for a known document: the start is idempotent on the run id, and a
        # first attempt that recorded the document but died before starting the run is finished here.
        try:
            await self.runs.start(
                doc.workflow,
                {"document": document},
                tenant=doc.tenant,
                run_id=doc.run_id or run_id_for(doc.id),
                document_id=doc.id,
                started_by=submitted_by,
            )
        except HearthError as exc:
            if not exc.retryable:  # e.g. the workflow is not defined: the document says why
                await self.store.mark_failed(doc.id, exc.to_dict())
            raise
        return doc, created

    async def on_ingest(self, envelope: Envelope, data: DocumentSubmitted) -> None:
        source = DocumentSource(blob=data.blob, text=data.text, filename=data.filename, content_type=data.content_type)
        await self.submit(
            document_id=document_id_for_event(envelope.id),
            tenant=envelope.tenant,
            source=source,
            source_system=data.source_system,
            external_id=data.external_id,
            metadata=data.metadata,
            submitted_by=envelope.source,
            workflow=workflow if isinstance(workflow := data.metadata.get("workflow"), str) else None,
        )

    # ---- results ----------------------------------------------------------------------------

    async def on_run_finished(self, envelope: Envelope, data: WorkflowCompleted | WorkflowFailed) -> None:
        if not data.document_id:
            return
        known = await self.store.run_of(data.document_id)
        if known is None or known[1] != data.workflow_id:
            return  # not a document run (or another run of that document): nothing to do
        tenant = known[0]
        if isinstance(data, WorkflowFailed):
            if await self.store.mark_failed(data.document_id, data.reason):
                await self._announce(data.document_id, data, failed=data.reason)
            return
        outputs = data.outputs
        if outputs is None:  # too big for the event: the run's record has them
            outputs = (await self.runs.describe(data.workflow_id)).outputs or {}
        processed = await self._results(data.workflow, data.workflow_id, outputs)
        processed.provenance["index"] = await self.index.index(
            data.document_id, tenant, [page.text for page in processed.pages]
        )
        await self.store.mark_processed(data.document_id, tenant, processed)
        await self._announce(data.document_id, data, processed=processed)

    async def _results(self, workflow: str, run_id: str, outputs: dict[str, Any]) -> Processed:
        extracted: TextExtracted | None = None
        analyzed: TextAnalyzed | None = None
        for output in outputs.values():
            if not isinstance(output, dict):
                continue
            if extracted is None and "result" in output and "page_count" in output:
                with contextlib.suppress(ValidationError):  # looks like one, but is not: keep looking
                    extracted = TextExtracted.model_validate(output)
            if analyzed is None and "entities" in output and "classification" in output:
                with contextlib.suppress(ValidationError):
                    analyzed = TextAnalyzed.model_validate(output)
        pages: list[PageSummary] = []
        text = ""
        warnings: list[str] = []
        provenance: dict[str, Any] = {"workflow": workflow, "run_id": run_id}
        if extracted is not None:
            document = ExtractedDocument.model_validate_json(await self.blobs.get(extracted.result))
            text = document.text
            pages = [
                PageSummary(
                    number=p.number,
                    source=p.source,
                    text=p.text,
                    confidence=p.confidence,
                    rotation=p.rotation,
                    skew=p.skew,
                    warnings=p.warnings,
                )
                for p in document.pages
            ]
            warnings.extend(document.warnings)
            provenance["ocr"] = {
                "model": extracted.model,
                "model_version": extracted.model_version,
                "confidence": extracted.confidence,
                "sources": extracted.sources,
                "page_count": extracted.page_count,
                "pages_read": extracted.pages_read,
            }
        if analyzed is not None:
            warnings.extend(analyzed.warnings)
            provenance["entities"] = {"model": analyzed.model, "model_version": analyzed.model_version}
            provenance["classification"] = {"method": analyzed.classification.method}
        return Processed(
            run_id=run_id,
            language=analyzed.language if analyzed else None,
            classification=analyzed.classification if analyzed else None,
            tags=analyzed.tags if analyzed else [],
            text=text,
            pages=pages,
            entities=analyzed.entities if analyzed else {},
            provenance=provenance,
            ocr_result=extracted.result if extracted else None,
            warnings=warnings,
        )

    async def _announce(
        self,
        document_id: str,
        run: WorkflowCompleted | WorkflowFailed,
        *,
        processed: Processed | None = None,
        failed: dict[str, Any] | None = None,
    ) -> None:
        try:
            doc = await self.store.get(document_id, tenant=None)
        except NotFound:
            return
        data = DocumentProcessed(
            document_id=document_id,
            status="failed" if failed is not None else "processed",
            source_system=doc.source_system,
            external_id=doc.external_id,
            filename=doc.filename,
            run_id=run.workflow_id,
            workflow=run.workflow,
            doc_class=processed.classification.label if processed and processed.classification else None,
            tags=processed.tags if processed else [],
            language=processed.language if processed else None,
            page_count=len(processed.pages) if processed else None,
            entities={
                name: [e.normalized for e in found]
                for name, found in (processed.entities if processed else {}).items()
                if name in EVENT_ENTITY_FIELDS
            },
            entity_counts={name: len(found) for name, found in (processed.entities if processed else {}).items()},
            warnings=(processed.warnings if processed else [])[:20],
            reason=failed,
        )
        envelope = Envelope(
            id=str(uuid.uuid5(_NAMESPACE, f"processed/{run.workflow_id}/{run.run_id}")),
            source=SOURCE,
            type="hearth.document.processed.v1",
            subject=document_id,
            tenant=doc.tenant,
            correlationid=run.workflow_id,
            data=data.model_dump(mode="json"),
        )
        await self.bus.publish(envelope)

    # ---- consumers --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the ingest and results consumers (durable, shared by every gateway)."""
        specs = (
            ("documents-ingest", "hearth.ingest.document.v1", self.on_ingest, "starts document_processing runs"),
            ("documents-completed", "hearth.workflow.completed.v1", self.on_run_finished, "stores document results"),
            ("documents-failed", "hearth.workflow.failed.v1", self.on_run_finished, "records failed documents"),
        )
        for durable, subject, handler, description in specs:
            consumer = EventConsumer(
                self.bus, durable=durable, filter_subject=subject, handler=handler, description=description, batch=8
            )
            try:
                await consumer.start()
            except HearthError as exc:
                log.error("document consumer not started", durable=durable, error=exc.to_dict())
                raise
            self._consumers.append(consumer)

    async def stop(self) -> None:
        for consumer in self._consumers:
            await consumer.stop()
        self._consumers.clear()
