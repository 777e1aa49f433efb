"""The lifecycle workflows' activities: every read and write of blobs, cold copies, rows and keys.

Each is idempotent, so Temporal may retry any of them and a schedule run cut short is finished by
the next: a move writes and verifies the cold copy before the row says ``cold`` and deletes the
hot copy last; a purge deletes files before rows, under the row's lock; a rewrap skips what is on
the newest version already. The policy file is read at each call, so an edit applies to the next
selection. ``HearthError`` becomes an ``ApplicationError`` (non-retryable unless it says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from services.governance.config import TenantPolicy, load_config
from services.governance.keys import TenantKeys, rewrap_row_key
from services.governance.settings import GovernanceSettings
from services.governance.store import DocumentFiles, LifecycleStore, lifecycle_entry
from shared.blobstore import BlobStore
from shared.coldstore import ColdStore
from shared.crypto.transit import KEY_PREFIX, TransitKeyring, tenant_key_name
from shared.errors import Conflict, HearthError, NotFound, PermanentFailure, Unavailable
from shared.lifecycle import (
    Archived,
    Assessed,
    DocumentIds,
    DocumentTask,
    KeyStatus,
    KeyStatuses,
    LifecycleRun,
    Purged,
    Reconciled,
    Rewrapped,
    Rotated,
    TenantBatch,
    TenantList,
)
from shared.logging import get_logger

log = get_logger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


def _mapped(fn: Callable[[Any, In], Awaitable[Out]]) -> Callable[[Any, In], Awaitable[Out]]:
    @functools.wraps(fn)
    async def run(self: Any, inp: In) -> Out:
        try:
            return await fn(self, inp)
        except HearthError as err:
            raise ApplicationError(err.detail, err.to_dict(), type=err.code, non_retryable=not err.retryable) from err

    return run


def _run_id() -> str | None:
    return activity.info().workflow_id if activity.in_activity() else None


def _beat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


class LifecycleActivities:
    """Bound to the service's stores once it has connected (``bind``); see the module docstring."""

    def __init__(self, settings: GovernanceSettings | None = None) -> None:
        self.settings = settings or GovernanceSettings()
        self._store: LifecycleStore | None = None
        self._blobs: BlobStore | None = None
        self._keys: TenantKeys | None = None

    def bind(self, store: LifecycleStore, blobs: BlobStore, keys: TenantKeys | None) -> None:
        self._store, self._blobs, self._keys = store, blobs, keys

    def _deps(self) -> tuple[LifecycleStore, BlobStore, ColdStore]:
        if self._store is None or self._blobs is None:
            raise Unavailable("the governance service is still starting")
        if self._blobs.cold is None:
            raise PermanentFailure("the blob store has no cold tier", code="no-cold-tier")
        return self._store, self._blobs, self._blobs.cold

    def _tenant_keys(self) -> tuple[TenantKeys, TransitKeyring]:
        if self._keys is None or self._blobs is None or self._blobs.keyring is None:
            raise PermanentFailure(
                "key rotation needs the governance AppRole (secrets/approle-governance.json)", code="no-keyring"
            )
        return self._keys, self._blobs.keyring

    def policy(self, tenant: str) -> TenantPolicy:
        """The tenant's rules, from the policy file as it is now."""
        try:
            config = load_config(self.settings.retention_file, self.settings.extra_files())
        except ValueError as exc:
            raise PermanentFailure(str(exc), code="bad-lifecycle-policy") from None
        return config.policy(tenant)

    def activities(self) -> list[Callable[..., Awaitable[Any]]]:
        """Every activity, for the service's worker."""
        return [
            self.tenants,
            self.reconcile,
            self.select_idle,
            self.archive,
            self.assess,
            self.select_due,
            self.purge,
            self.key_status,
            self.rotate,
            self.rewrap,
        ]

    # ---- common ------------------------------------------------------------------------------
    @activity.defn(name="lifecycle.tenants")
    @_mapped
    async def tenants(self, inp: LifecycleRun) -> TenantList:
        """Tenants holding documents (only those asked for, when the run names some)."""
        store, _, _ = self._deps()
        found = await store.tenants()
        return TenantList(tenants=[t for t in found if not inp.tenants or t in inp.tenants])

    # ---- tiering -----------------------------------------------------------------------------
    @activity.defn(name="lifecycle.reconcile")
    @_mapped
    async def reconcile(self, inp: TenantBatch) -> Reconciled:
        """Cold documents whose files were restored by a read (anywhere) become hot; interrupted moves finish."""
        store, blobs, cold = self._deps()
        result = Reconciled(tenant=inp.tenant)
        after = inp.after
        while True:
            docs = await store.cold(inp.tenant, after=after, limit=inp.limit)
            for doc in docs:
                result.checked += 1
                outcome = await self._reconcile_one(store, blobs, cold, doc, inp.run)
                if outcome == "restored":
                    result.restored += 1
                elif outcome == "finished":
                    result.finished += 1
            _beat(result.checked)
            if len(docs) < inp.limit:
                return result
            after = docs[-1].id

    async def _reconcile_one(
        self, store: LifecycleStore, blobs: BlobStore, cold: ColdStore, doc: DocumentFiles, run: str | None
    ) -> str:
        tiered_at = doc.tiered_at
        restored: list[str] = []
        leftovers: list[str] = []
        for ref in doc.blobs:
            written = await blobs.stored_at(ref.key)
            if written is None:
                if await cold.manifest(ref.bucket, ref.key) is None:
                    log.error("document file missing from both tiers", document=doc.id, blob=ref.key)
                continue
            if tiered_at is not None and written > tiered_at:
                restored.append(ref.key)  # a read brought it back (the cold copy goes or went with it)
            elif await cold.manifest(ref.bucket, ref.key) is not None:
                leftovers.append(ref.key)  # the move stopped after marking the row: finish it
        if restored:
            await store.mark_hot(doc, reason=f"restored by a read of {len(restored)} files", run=run)
            for key in restored:
                await cold.delete(blobs.bucket, key)
            return "restored"
        for key in leftovers:
            await self._delete_hot(blobs, key)
        return "finished" if leftovers else "cold"

    @staticmethod
    async def _delete_hot(blobs: BlobStore, key: str) -> None:
        with contextlib.suppress(NotFound):
            await blobs.delete(key)

    @activity.defn(name="lifecycle.select_idle")
    @_mapped
    async def select_idle(self, inp: TenantBatch) -> DocumentIds:
        """Ids of the tenant's hot documents whose files were not read within the idle time."""
        store, _, _ = self._deps()
        docs = await store.idle(self.policy(inp.tenant), after=inp.after, limit=inp.limit)
        return DocumentIds(ids=[d.id for d in docs])

    @activity.defn(name="lifecycle.archive")
    @_mapped
    async def archive(self, inp: DocumentTask) -> Archived:
        """Move one document's files to the cold tier: write, verify, mark the row, then delete the hot copies."""
        store, blobs, cold = self._deps()
        policy = self.policy(inp.tenant)
        idle_since = policy.idle_since()
        doc = await store.files(inp.document_id)
        if doc is None or doc.tier != "hot":
            return Archived(document_id=inp.document_id, moved=False, reason="not hot")
        plain = stored = 0
        written: list[str] = []
        for ref in doc.blobs:
            manifest = await cold.manifest(ref.bucket, ref.key)
            if manifest is None or manifest.sha256 != ref.sha256 or manifest.size != ref.size:
                await cold.archive(ref, blobs.open(ref), tenant=doc.tenant)
                written.append(ref.key)
            manifest = await cold.verify(ref)
            plain += ref.size
            stored += manifest.stored_size
            _beat(ref.key)
        reason = (
            f"archived: {len(doc.blobs)} files, {plain} bytes -> {stored} bytes in the cold tier "
            f"(not read for {policy.idle_s:g}s)"
        )
        if not await store.mark_cold(doc, stored=stored, idle_since=idle_since, reason=reason, run=inp.run):
            for key in written:  # read meanwhile: it stays hot, the copies just made are of no use
                await cold.delete(blobs.bucket, key)
            return Archived(document_id=doc.id, moved=False, reason="read meanwhile")
        for ref in doc.blobs:
            await self._delete_hot(blobs, ref.key)
        return Archived(document_id=doc.id, moved=True, files=len(doc.blobs), bytes=plain, stored_bytes=stored)

    # ---- retention ---------------------------------------------------------------------------
    @activity.defn(name="lifecycle.assess")
    @_mapped
    async def assess(self, inp: TenantBatch) -> Assessed:
        """Each document's retention class and due date, from the policy as it is now."""
        store, _, _ = self._deps()
        return Assessed(tenant=inp.tenant, changed=await store.assess(self.policy(inp.tenant), run=inp.run))

    @activity.defn(name="lifecycle.select_due")
    @_mapped
    async def select_due(self, inp: TenantBatch) -> DocumentIds:
        """Ids of the tenant's documents past retention and not under legal hold."""
        store, _, _ = self._deps()
        return DocumentIds(ids=[d.id for d in await store.due(inp.tenant, after=inp.after, limit=inp.limit)])

    @activity.defn(name="lifecycle.purge")
    @_mapped
    async def purge(self, inp: DocumentTask) -> Purged:
        """Delete a due document's files (both tiers) and derived rows, keep its tombstone, audit it."""
        store, blobs, cold = self._deps()

        async def delete_files(doc: DocumentFiles) -> int:
            for ref in doc.blobs:
                await self._delete_hot(blobs, ref.key)
                await cold.delete(ref.bucket, ref.key)
            return len(doc.blobs)

        current = await store.files(inp.document_id)
        cls, rule = self.policy(inp.tenant).retention_for(current.retention_class if current else None)
        doc = await store.purge(inp.document_id, delete_files, policy=f"{cls}: {rule}", run=inp.run)
        if doc is not None:
            # Once more after the commit: a read that restored a file while the purge ran (it checked
            # the row before the tombstone was visible) has finished its write by now.
            await delete_files(doc)
        return Purged(document_id=inp.document_id, purged=doc is not None, files=len(doc.blobs) if doc else 0)

    # ---- keys --------------------------------------------------------------------------------
    @activity.defn(name="keys.status")
    @_mapped
    async def key_status(self, inp: LifecycleRun) -> KeyStatuses:
        """Each tenant key's newest version and age; ``due`` when older than the tenant's ``rotation.max_age``."""
        keys, _ = self._tenant_keys()
        now = datetime.now(UTC)
        out = []
        for tenant in await keys.tenants():
            if inp.tenants and tenant not in inp.tenants:
                continue
            version, created = await keys.newest(tenant)
            max_age = self.policy(tenant).rotation_max_age_s
            # An age transit does not report is not a reason to rotate at every run.
            due = created is not None and (now - created).total_seconds() >= max_age
            out.append(KeyStatus(tenant=tenant, version=version, created_at=created, due=due))
        return KeyStatuses(keys=out)

    @activity.defn(name="keys.rotate")
    @_mapped
    async def rotate(self, inp: KeyStatus) -> Rotated:
        """A new version of the tenant's key, unless someone made one since ``inp`` was read."""
        keys, _ = self._tenant_keys()
        store, _, _ = self._deps()
        version, _ = await keys.newest(inp.tenant)
        if version > inp.version:
            return Rotated(tenant=inp.tenant, version=version)
        version = await keys.rotate(inp.tenant)
        reason = f"key {tenant_key_name(inp.tenant)} rotated to version {version} (was {inp.version})"
        await store.audit([lifecycle_entry("lifecycle.key_rotated", inp.tenant, None, reason, run=_run_id())])
        return Rotated(tenant=inp.tenant, version=version)

    @activity.defn(name="keys.rewrap")
    @_mapped
    async def rewrap(self, inp: LifecycleRun) -> Rewrapped:
        """Every stored data key of the tenants onto their key's newest version: hot blobs, cold copies, rows."""
        keys, keyring = self._tenant_keys()
        store, blobs, cold = self._deps()
        newest: dict[str, int] = {}
        for tenant in await keys.tenants():
            if not inp.tenants or tenant in inp.tenants:
                newest[tenant_key_name(tenant)] = (await keys.newest(tenant))[0]
        result = Rewrapped()
        for key, header in await blobs.sealed():
            result.checked += 1
            if header is None or header.key_version >= newest.get(header.key_name, 0):
                continue
            try:
                result.blobs += await blobs.rewrap(key)
            except Conflict:  # replaced meanwhile: the new version has a fresh key already
                pass
            except NotFound:
                pass
            if result.checked % 50 == 0:
                _beat(result.checked)
        manifests = await _in_thread(lambda: list(cold.manifests()))
        for manifest in manifests:
            result.checked += 1
            header = manifest.header()
            if header is not None and header.key_version < newest.get(header.key_name, 0):
                result.cold += await cold.rewrap(manifest.bucket, manifest.key)
        for key_name, version in newest.items():
            tenant = key_name[len(KEY_PREFIX) :]

            async def fresh(stored: str, version: int = version) -> str | None:
                return await rewrap_row_key(keyring, stored, version)

            result.rows += await store.rewrap_row_keys(tenant, fresh)
            _beat(result.checked)
        if result.blobs or result.cold or result.rows:
            reason = f"rewrapped {result.blobs} blobs, {result.cold} cold copies, {result.rows} row keys"
            scope = next(iter(newest))[len(KEY_PREFIX) :] if len(newest) == 1 else "*"
            await store.audit([lifecycle_entry("lifecycle.rewrapped", scope, None, reason, run=_run_id())])
        return result


async def _in_thread(fn: Callable[[], Out]) -> Out:
    return await asyncio.to_thread(fn)
