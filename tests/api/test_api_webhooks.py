"""ESP webhooks: each provider's documented bounce and complaint payloads suppress the right
address, a bad signature is refused and records nothing, redeliveries change nothing."""

from __future__ import annotations

import json

import pytest
from api_world import SENT_AT, Clock, World, events, subscriber, suppressions
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from webhook_signing import (
    CERT_URL,
    MAILGUN_KEY,
    POSTMARK_AUTH,
    TOPIC,
    SendGridSigner,
    SnsSigner,
    basic,
    fixture,
    mailgun_body,
)

from newsletter.config import Settings, WebhookSecrets
from newsletter.render.render import message_id_header
from newsletter.track.feedback import message_key


@pytest.fixture
def sns(client: TestClient, settings: Settings) -> SnsSigner:
    signer = SnsSigner()
    client.app.state.sns_fetch = signer.fetch  # type: ignore[attr-defined]
    settings.webhooks.ses_topic_arns = [TOPIC]
    return signer


@pytest.fixture
def sendgrid(settings: Settings) -> SendGridSigner:
    signer = SendGridSigner()
    settings.webhooks.sendgrid_public_key = signer.public_key
    return signer


@pytest.fixture
def ids(world: World, settings: Settings) -> dict[str, str]:
    mid = message_id_header(world.message_id, settings=settings)
    return {"email": world.email, "message_id": mid, "bare_message_id": mid.strip("<>")}


def suppressed(engine: Engine) -> dict[str, str]:
    return {s.email: s.reason for s in suppressions(engine)}


def feedback_events(engine: Engine) -> list[tuple[str, int | None]]:
    return [(e.kind, e.message_id) for e in events(engine)]


def test_ses_bounce_suppresses_the_address_and_links_the_message(
    client: TestClient, engine: Engine, world: World, sns: SnsSigner, ids: dict[str, str]
) -> None:
    body = sns.envelope(fixture("ses_bounce.json", **ids))
    response = client.post("/api/webhooks/ses", content=json.dumps(body))
    assert (response.status_code, response.json()["counts"]) == (200, {"suppressed": 1})
    assert suppressed(engine) == {world.email: "bounced"}
    assert subscriber(engine, world.subscriber_id).status == "bounced"
    assert feedback_events(engine) == [("bounce", world.message_id)]
    assert events(engine)[0].occurred_at == SENT_AT.replace(minute=5, second=38, microsecond=237000)
    again = client.post("/api/webhooks/ses", content=json.dumps(body))  # SNS retries
    assert again.json()["counts"] == {"duplicate": 1} and len(events(engine)) == 1
    assert sns.fetched == [CERT_URL, CERT_URL]


def test_ses_complaint_with_signature_version_2_marks_complained(
    client: TestClient, engine: Engine, world: World, sns: SnsSigner, ids: dict[str, str]
) -> None:
    body = sns.envelope(fixture("ses_complaint.json", **ids), version="2")
    assert client.post("/api/webhooks/ses", content=json.dumps(body)).status_code == 200
    assert suppressed(engine) == {world.email: "complained"}
    assert subscriber(engine, world.subscriber_id).status == "complained"
    delivery = sns.envelope(fixture("ses_delivery.json", **ids))
    delivery["MessageId"] = "another"
    client.post(
        "/api/webhooks/ses", content=json.dumps(sns.envelope(fixture("ses_delivery.json", **ids)))
    )
    assert feedback_events(engine) == [
        ("complaint", world.message_id),
        ("delivered", world.message_id),
    ]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda b: b | {"Message": b["Message"].replace("Permanent", "Transient")},
        lambda b: b | {"Signature": "AAAA" + b["Signature"][4:]},
        lambda b: b | {"SigningCertURL": "https://evil.example.com/cert.pem"},
        lambda b: b | {"SigningCertURL": "http://sns.us-east-1.amazonaws.com/x.pem"},
        lambda b: b | {"TopicArn": "arn:aws:sns:us-east-1:999:other"},
        lambda b: b | {"SignatureVersion": "3"},
    ],
)
def test_a_tampered_ses_notification_is_refused_and_records_nothing(
    client: TestClient, engine: Engine, world: World, sns: SnsSigner, ids: dict[str, str], tamper
) -> None:
    body = tamper(sns.envelope(fixture("ses_bounce.json", **ids)))
    response = client.post("/api/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 401
    assert suppressed(engine) == {} and events(engine) == []
    assert subscriber(engine, world.subscriber_id).status == "active"


def test_ses_subscription_is_confirmed_at_the_sns_address(
    client: TestClient, engine: Engine, world: World, sns: SnsSigner
) -> None:
    body = sns.envelope("You have chosen to subscribe", kind="SubscriptionConfirmation")
    response = client.post("/api/webhooks/ses", content=json.dumps(body))
    assert response.status_code == 200 and "subscribed" in response.json()["note"]
    assert sns.fetched[-1].startswith("https://sns.us-east-1.amazonaws.com/?Action=Confirm")
    forged = sns.envelope("x", kind="SubscriptionConfirmation")
    forged["SubscribeURL"] = "https://evil.example.com/confirm"
    assert client.post("/api/webhooks/ses", content=json.dumps(forged)).status_code == 401
    assert sns.fetched[-1] != "https://evil.example.com/confirm"


def test_sendgrid_signed_events_bounce_and_complaint(
    client: TestClient,
    engine: Engine,
    world: World,
    sendgrid: SendGridSigner,
    ids: dict[str, str],
    clock: Clock,
) -> None:
    stamp = str(int(clock.now.timestamp()))
    body = fixture("sendgrid_events.json", **ids).encode()
    response = client.post(
        "/api/webhooks/sendgrid", content=body, headers=sendgrid.headers(body, stamp)
    )
    assert response.json()["counts"] == {
        "recorded": 1,
        "suppressed": 1,
    }  # delivered, bounce; open ignored
    assert suppressed(engine) == {world.email: "bounced"}
    assert feedback_events(engine) == [
        ("delivered", world.message_id),
        ("bounce", world.message_id),
    ]
    spam = fixture("sendgrid_spamreport.json", **ids).encode()
    client.post("/api/webhooks/sendgrid", content=spam, headers=sendgrid.headers(spam, stamp))
    assert suppressed(engine) == {world.email: "complained"}  # a complaint outranks a bounce
    assert subscriber(engine, world.subscriber_id).status == "complained"


def test_sendgrid_bad_signature_or_stale_timestamp_is_refused(
    client: TestClient,
    engine: Engine,
    world: World,
    sendgrid: SendGridSigner,
    ids: dict,
    clock: Clock,
) -> None:
    stamp = str(int(clock.now.timestamp()))
    body = fixture("sendgrid_events.json", **ids).encode()
    headers = sendgrid.headers(body, stamp)
    forged = body.replace(b'"bounce"', b'"spamreport"')
    assert client.post("/api/webhooks/sendgrid", content=forged, headers=headers).status_code == 401
    old = str(int(clock.now.timestamp()) - 3600)
    stale = sendgrid.headers(body, old)
    assert client.post("/api/webhooks/sendgrid", content=body, headers=stale).status_code == 401
    assert client.post("/api/webhooks/sendgrid", content=body).status_code == 401
    assert suppressed(engine) == {} and events(engine) == []


def test_postmark_basic_auth_bounce_spam_and_soft_bounces(
    client: TestClient, engine: Engine, world: World, settings: Settings, ids: dict[str, str]
) -> None:
    settings.webhooks.postmark_basic_auth = POSTMARK_AUTH
    settings.soft_bounce_limit = 2
    soft = fixture("postmark_soft.json", **ids)
    auth = basic(POSTMARK_AUTH)
    assert client.post("/api/webhooks/postmark", content=soft, headers=auth).json()["counts"] == {
        "recorded": 1
    }
    second = soft.replace("4323372036854775808", "4323372036854775809")
    assert client.post("/api/webhooks/postmark", content=second, headers=auth).json()["counts"] == {
        "suppressed": 1
    }
    assert suppressed(engine) == {world.email: "bounced"}
    # linked by address and time: Postmark's MessageID is its own
    assert feedback_events(engine) == [("soft_bounce", world.message_id)] * 2
    spam = fixture("postmark_spam.json", **ids)
    assert client.post("/api/webhooks/postmark", content=spam, headers=auth).status_code == 200
    assert suppressed(engine) == {world.email: "complained"}


def test_postmark_hard_bounce_and_wrong_password(
    client: TestClient, engine: Engine, world: World, settings: Settings, ids: dict[str, str]
) -> None:
    settings.webhooks.postmark_basic_auth = POSTMARK_AUTH
    bounce = fixture("postmark_bounce.json", **ids)
    assert (
        client.post(
            "/api/webhooks/postmark", content=bounce, headers=basic("postmark:guess")
        ).status_code
        == 401
    )
    assert client.post("/api/webhooks/postmark", content=bounce).status_code == 401
    assert suppressed(engine) == {}
    client.post("/api/webhooks/postmark", content=bounce, headers=basic(POSTMARK_AUTH))
    assert suppressed(engine) == {world.email: "bounced"}


def test_mailgun_hmac_failed_and_complained(
    client: TestClient, engine: Engine, world: World, settings: Settings, ids: dict, clock: Clock
) -> None:
    settings.webhooks.mailgun_signing_key = MAILGUN_KEY
    stamp = str(int(clock.now.timestamp()))
    failed = mailgun_body("mailgun_failed_permanent.json", timestamp=stamp, **ids)
    assert client.post("/api/webhooks/mailgun", content=failed).json()["counts"] == {
        "suppressed": 1
    }
    assert feedback_events(engine) == [("bounce", world.message_id)]
    complained = mailgun_body("mailgun_complained.json", timestamp=stamp, **ids)
    # Mailgun signs timestamp + token (not the body): a wrong key or token fails the check
    forged = complained.replace(b"f1e2d3c4b5", b"00000000b5")
    assert client.post("/api/webhooks/mailgun", content=forged).status_code == 401
    settings.webhooks.mailgun_signing_key = "another-key"
    assert client.post("/api/webhooks/mailgun", content=complained).status_code == 401
    assert suppressed(engine) == {world.email: "bounced"}
    settings.webhooks.mailgun_signing_key = MAILGUN_KEY
    client.post("/api/webhooks/mailgun", content=complained)
    assert suppressed(engine) == {world.email: "complained"}


def test_unconfigured_providers_are_refused(
    client: TestClient, engine: Engine, world: World, settings: Settings, ids: dict[str, str]
) -> None:
    settings.webhooks = WebhookSecrets()
    for provider, body in [
        ("ses", "{}"),
        ("sendgrid", fixture("sendgrid_events.json", **ids)),
        ("postmark", fixture("postmark_bounce.json", **ids)),
        ("mailgun", fixture("mailgun_complained.json", timestamp="1", signature="x", **ids)),
    ]:
        response = client.post(f"/api/webhooks/{provider}", content=body)
        assert response.status_code == 403, (provider, response.text)
        assert "webhooks." in response.json()["detail"]
    assert client.post("/api/webhooks/sparkpost", content="{}").status_code == 422
    assert suppressed(engine) == {} and events(engine) == []


def test_a_bounce_for_an_address_we_do_not_know_still_suppresses_it(
    client: TestClient, engine: Engine, world: World, sns: SnsSigner, ids: dict[str, str]
) -> None:
    body = sns.envelope(fixture("ses_bounce.json", **(ids | {"email": "stranger@example.org"})))
    assert client.post("/api/webhooks/ses", content=json.dumps(body)).json()["counts"] == {
        "unknown": 1
    }
    assert suppressed(engine) == {"stranger@example.org": "bounced"} and events(engine) == []


def test_message_key_accepts_only_our_signed_message_ids(settings: Settings) -> None:
    header = message_id_header(42, settings=settings)
    assert message_key(header, settings=settings) == 42
    assert message_key(header.strip("<>"), settings=settings) == 42
    forged = header.replace("nl.42.", "nl.43.")
    assert message_key(forged, settings=settings) is None
    assert message_key("<14c5d75ce93.dfd.64b469@ismtpd-555>", settings=settings) is None
    assert message_key(None, settings=settings) is None
