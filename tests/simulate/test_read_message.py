"""A simulated mail client reads the tracking links of a delivered message."""

from __future__ import annotations

import binascii

from newsletter.config import Settings
from newsletter.deliver.transport import OutgoingMessage
from newsletter.render.links import MessageLinks
from newsletter.simulate.recipients import read_message

SETTINGS = Settings(
    database_url="sqlite://", secret_key="k" * 32, base_url="https://t.example.com", sender="a@b.c"
)


def _message(html: str) -> OutgoingMessage:
    body = binascii.b2a_qp(html.encode()).decode()
    data = (
        "Content-Type: text/plain\r\n\r\nhttps://t.example.com/ignored\r\n"
        f"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: "
        f"quoted-printable\r\n\r\n{body}"
    )
    return OutgoingMessage(key=7, sender="a@b.c", recipients=["r@x.y"], data=data.encode())


def test_the_reader_finds_pixel_slots_unsubscribe_and_every_distinct_link_once() -> None:
    links = MessageLinks(base_url=SETTINGS.base_url, secret_key=SETTINGS.secret_key, message_id=7)
    one, two = links.click("https://n.example/a?x=1&y=2", 1), links.click("https://n.example/b", 2)
    html = (
        f'<a href="{one.replace("&", "&amp;")}"><img src="https://n.example/i.jpg"></a>'
        f'<a href="{one}">Title</a><a href="https://elsewhere.example/x">ad</a>'
        f'<a href="{two}">Second</a><a href="{links.unsubscribe()}">unsubscribe</a>'
        f'<a href="{links.view()}">view</a><a href="https://t.example.com/t/c/forged">x</a>'
        f'<img src="{links.open_pixel()}" width="1">'
    )
    box = read_message(_message(html), settings=SETTINGS)
    assert box.pixel == links.open_pixel()
    assert box.slots == {1: one, 2: two}
    assert box.unsubscribe == links.unsubscribe()
    forged = "https://t.example.com/t/c/forged"
    assert box.links == [one, two, links.unsubscribe(), links.view(), forged]
