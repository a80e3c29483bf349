"""Persistence: PostgreSQL through SQLAlchemy. The only package that imports SQLAlchemy or psycopg.

The engine and the front doors use ``Store``; ``database.open_database`` says which server.
"""

from cloudsweep.store.accounts import AccountClaimed
from cloudsweep.store.api import BATCH_SIZE, ItemLock, Store
from cloudsweep.store.approvals import AdmissionRecord
from cloudsweep.store.findings import FindingFilter
from cloudsweep.store.ledger import ActionRecord, Approval, Candidate, Intent
from cloudsweep.store.records import (
    AccountRecord,
    OrganizationRecord,
    RetentionReport,
    ScanRecord,
    UpsertResult,
    WasteItemRecord,
)

__all__ = [
    "BATCH_SIZE",
    "AccountClaimed",
    "AccountRecord",
    "ActionRecord",
    "AdmissionRecord",
    "Approval",
    "Candidate",
    "FindingFilter",
    "Intent",
    "ItemLock",
    "OrganizationRecord",
    "RetentionReport",
    "ScanRecord",
    "Store",
    "UpsertResult",
    "WasteItemRecord",
]
