"""The parts of boto3 that hold no tenant's data, built once per process.

Called by ``cloudsweep.aws.session`` for every ``AccountSession``. A fresh ``boto3.Session()``
reads and parses botocore's JSON data (service models, endpoints, partitions) again: about
0.07 CPU-seconds for a session and its first client, twice per connection check, which made the
operator spend 0.8 CPU-s per AwsAccount (issue 16). Here:

- ``boto3_session(core)``: a boto3 session on a botocore session of its own (its own event hooks,
  credentials and clients) that reads one data loader shared with every other; the loader only
  caches parsed, read-only data files;
- ``base_session()``: one boto3 session per process with the operator's own base credentials
  (the default chain: environment, profile, web identity), resolved once and shared: they are
  CloudSweep's identity, the same for every account. A refreshable chain (web identity)
  refreshes itself, under botocore's lock. The credentials' environment is part of the cache key,
  so a changed environment (tests, a rotated profile) resolves again. Clients made from it are
  each their own (their own copy of its event hooks): a recorder is attached to the client;
- client classes: botocore builds a new class for every client, one method (and lazy docstring)
  per operation of the service (600 for EC2): 29% of the operator's CPU during scans. A client
  made by a session on the shared loader reuses the class built for that service once, with the
  hooks every such session has; a session given other class hooks gets its own class, as before.
  A class holds methods only: no credentials, no hooks, no tenant's data. The service model
  (botocore's parsed API description and its derived caches, such as the error shapes parsed
  on a client's first error: 7%) is shared the same way;
- botocore checks every event handler's signature when it is registered (``inspect``, 150
  builtin handlers per session: 12% of a connection check's CPU); the answer for a function is
  remembered while the function lives. And every copy of an event emitter (one per client)
  started with an empty cache of event-name aliases (14% of making a client): emitters with
  botocore's standard aliases share one (a pure function of the event name).

Assumed-role credentials are never shared: every ``AccountSession`` assumes its account's role
itself, with that account's ExternalId.
"""

from __future__ import annotations

import copy
import inspect
import os
import threading
import types
import weakref
from typing import Any

import boto3
import botocore.client
import botocore.hooks
import botocore.session

# The environment botocore's default credential chain reads.
_CREDENTIAL_ENVIRONMENT = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)

_lock = threading.Lock()
_loader: Any = None
_base_credentials: dict[tuple[str | None, ...], Any] = {}
_base_sessions: dict[tuple[str | None, ...], boto3.Session] = {}


def loader() -> Any:
    """The process's botocore data loader (with boto3's data folder, as a boto3 session has it)."""
    global _loader
    with _lock:
        if _loader is None:
            _loader = boto3.Session(botocore_session=botocore.session.Session())._loader
        return _loader


def boto3_session(core: Any) -> boto3.Session:
    """A boto3 session on the botocore session ``core``, which then reads the shared loader.

    boto3 appends its data folder to the loader of the session it wraps: wrapped first (into
    ``core``'s own, throw-away loader), so the shared loader's folder list never grows.
    """
    session = boto3.Session(botocore_session=core)
    core.register_component("data_loader", loader())
    return session


def base_session() -> boto3.Session:
    """The boto3 session with the operator's own base credentials, one per process (per
    credential environment). Never attach hooks to it: attach them to the clients it makes."""
    key = tuple(os.environ.get(name) for name in _CREDENTIAL_ENVIRONMENT)
    with _lock:
        session = _base_sessions.get(key)
    if session is not None:
        return session
    core: Any = botocore.session.Session()
    session = boto3_session(core)
    credentials = core.get_credentials()
    if credentials is None:  # none found: not cached, so set-up later is seen
        return session
    with _lock:
        credentials = _base_credentials.setdefault(key, credentials)
        core._credentials = credentials  # botocore's own attribute for them
        return _base_sessions.setdefault(key, session)


def base_client(service: str, **kwargs: Any) -> Any:
    """A client of its own on the shared base session (its creation serialised: a boto3
    session's client creation is not documented as thread-safe)."""
    session: Any = base_session()
    with _client_lock:
        return session.client(service, **kwargs)


_client_lock = threading.Lock()


# --- client classes, shared ------------------------------------------------------------------

_classes: dict[tuple[str, str | None], type] = {}
_classes_lock = threading.Lock()
_reference_emitter: Any = None
_client_creator: Any = botocore.client.ClientCreator  # botocore's private parts, typed loosely
_hooks: Any = botocore.hooks
_original_create_client_class = _client_creator._create_client_class


def _class_hooks(emitter: Any, service_model: Any) -> list[tuple[Any, ...]] | None:
    """What the 'creating-client-class' hooks of ``emitter`` are for the service, as comparable
    values (module, name, closure values), or None when that cannot be told."""
    event = f"creating-client-class.{service_model.service_id.hyphenize()}"
    try:
        aliased = emitter._alias_event_name(event)
        handlers = list(emitter._emitter._handlers.prefix_search(aliased))
    except AttributeError:
        return None
    described = []
    for handler in handlers:
        cells = tuple(repr(c.cell_contents) for c in getattr(handler, "__closure__", None) or ())
        if any(" at 0x" in cell for cell in cells):
            return None  # holds an object that has no comparable value
        code = getattr(handler, "__code__", None)
        described.append((getattr(handler, "__module__", None), code, cells))
    return described


def _reference() -> Any:
    """The event hooks every session of ``boto3_session`` starts with: classes are built with
    these, never with a tenant session's own (a class's docstrings keep their emitter)."""
    global _reference_emitter
    with _classes_lock:
        if _reference_emitter is None:
            core: Any = botocore.session.Session()
            boto3_session(core)
            _reference_emitter = core.get_component("event_emitter")
        return _reference_emitter


def _create_client_class(creator: Any, service_name: str, service_model: Any) -> type:
    if getattr(creator, "_loader", None) is not _loader or _loader is None:
        return _original_create_client_class(creator, service_name, service_model)  # type: ignore[no-any-return]
    reference = _reference()
    hooks = _class_hooks(creator._event_emitter, service_model)
    if hooks is None or hooks != _class_hooks(reference, service_model):
        return _original_create_client_class(creator, service_name, service_model)  # type: ignore[no-any-return]
    key = (service_name, service_model.api_version)
    with _classes_lock:
        cls = _classes.get(key)
    if cls is None:
        builder = copy.copy(creator)
        builder._event_emitter = reference
        cls = _original_create_client_class(builder, service_name, service_model)
        with _classes_lock:
            cls = _classes.setdefault(key, cls)
    return cls


_models: dict[tuple[str, str | None], Any] = {}
_original_load_service_model = _client_creator._load_service_model


def _load_service_model(creator: Any, service_name: str, api_version: str | None = None) -> Any:
    if getattr(creator, "_loader", None) is not _loader or _loader is None:
        return _original_load_service_model(creator, service_name, api_version)
    key = (service_name, api_version)
    with _classes_lock:
        model = _models.get(key)
    if model is None:
        model = _original_load_service_model(creator, service_name, api_version)
        with _classes_lock:
            model = _models.setdefault(key, model)
    return model


# --- handler signature checks, remembered ----------------------------------------------------

_accepts: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_original_accepts_kwargs = _hooks.accepts_kwargs


def _accepts_kwargs(func: Any) -> bool:
    """botocore's check that a handler takes ``**kwargs``; for a plain function, remembered."""
    if not isinstance(func, types.FunctionType):
        return bool(_original_accepts_kwargs(func))
    known = _accepts.get(func)
    if known is None:
        known = _accepts[func] = inspect.getfullargspec(func).varkw is not None
    return known


# --- event-name aliases, remembered once per process --------------------------------------

_aliases: dict[str, str] = {}
_original_aliaser_init = _hooks.EventAliaser.__init__


def _aliaser_init(self: Any, event_emitter: Any, event_aliases: Any = None) -> None:
    _original_aliaser_init(self, event_emitter, event_aliases)
    if self._event_aliases == _hooks.EVENT_ALIASES:
        self._alias_name_cache = _aliases


_client_creator._create_client_class = _create_client_class
_client_creator._load_service_model = _load_service_model
_hooks.accepts_kwargs = _accepts_kwargs
_hooks.EventAliaser.__init__ = _aliaser_init
