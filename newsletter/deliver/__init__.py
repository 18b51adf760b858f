"""deliver stage of the newsletter pipeline: transports (SMTP, outbox, memory) and retry policy."""

from newsletter.deliver.retry import Backoff, TokenBucket
from newsletter.deliver.smtp import SmtpTransport
from newsletter.deliver.transport import (
    BaseTransport,
    MemoryTransport,
    OutboxTransport,
    OutgoingMessage,
    SendResult,
    SendStatus,
    SmtpSettings,
    Transport,
    TransportConfigError,
    settings_from_url,
    transport_from_url,
)

__all__ = [
    "Backoff",
    "BaseTransport",
    "MemoryTransport",
    "OutboxTransport",
    "OutgoingMessage",
    "SendResult",
    "SendStatus",
    "SmtpSettings",
    "SmtpTransport",
    "TokenBucket",
    "Transport",
    "TransportConfigError",
    "settings_from_url",
    "transport_from_url",
]
