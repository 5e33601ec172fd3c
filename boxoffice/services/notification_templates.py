"""What a person is told about an outbox event, per topic and locale (zh-CN, en).

Each topic has a template per locale: an in-app title and body, an SMS text and an e-mail
subject and body, rendered from fields read out of the event's ``payload.resource`` (the object
as the GraphQL API shows it, camelCase). A field the resource does not carry renders as an
empty piece, never as an error: the emitting features may add fields over time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from boxoffice.models.notifications import NotificationChannel

LOCALES = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
SMS_SIGNATURE = {"zh-CN": "【Boxoffice】", "en": "[Boxoffice] "}
CHINA_TIME = timezone(timedelta(hours=8))

IN_APP, SMS, EMAIL = NotificationChannel.IN_APP, NotificationChannel.SMS, NotificationChannel.EMAIL


def pick_locale(value: object) -> str:
    """``zh-CN`` or ``en`` from a payload's ``locale`` (``en-US`` → ``en``); zh-CN otherwise."""
    if isinstance(value, str):
        lowered = value.strip().lower().replace("_", "-")
        if lowered == "en" or lowered.startswith("en-"):
            return "en"
    return DEFAULT_LOCALE


@dataclass(frozen=True)
class Text:
    title: str
    body: str
    sms: str | None = None  # None: the body
    email: str | None = None  # None: the body


@dataclass(frozen=True)
class Template:
    channels: tuple[NotificationChannel, ...]
    texts: Mapping[str, Text]  # per locale
    fields: Callable[[Mapping[str, Any], str], dict[str, str]]


@dataclass(frozen=True)
class Rendered:
    locale: str
    title: str
    body: str
    sms: str
    email_subject: str
    email_body: str


def _money(value: object, locale: str) -> str:
    if not isinstance(value, Mapping):
        return ""
    amount, currency = value.get("amount"), value.get("currency") or "CNY"
    if amount is None:
        return ""
    if locale == "zh-CN":
        return f"¥{amount}" if currency == "CNY" else f"{amount} {currency}"
    return f"{currency} {amount}"


def _time(value: object, locale: str) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    local = moment.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M")
    return f"{local}（北京时间）" if locale == "zh-CN" else f"{local} (UTC+8)"


def _text(value: object) -> str:
    return str(value).strip() if isinstance(value, str | int) else ""


def _event_title(resource: Mapping[str, Any]) -> str:
    """The event's title, wherever the resource carries it."""
    for key in ("eventTitle", "title"):
        if _text(resource.get(key)):
            return _text(resource.get(key))
    for nested in ("event", "session"):
        inner = resource.get(nested)
        if isinstance(inner, Mapping):
            found = _event_title(inner)
            if found:
                return found
    items = resource.get("items")
    if isinstance(items, list) and items and isinstance(items[0], Mapping):
        return _event_title(items[0])
    return ""


def _quoted(value: str, locale: str) -> str:
    if not value:
        return ""
    return f"「{value}」" if locale == "zh-CN" else f" ({value})"


def _order(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    return {
        "orderNo": _text(resource.get("orderNo")) or _text(resource.get("id")),
        "total": _money(resource.get("total"), locale),
        "event": _quoted(_event_title(resource), locale),
    }


def _ticket(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    seat = resource.get("seat")
    seat_text = ""
    if isinstance(seat, Mapping):
        parts = [_text(seat.get(k)) for k in ("section", "row", "number")]
        if all(parts):
            seat_text = (
                f"，座位 {parts[0]} {parts[1]} 排 {parts[2]} 号"
                if locale == "zh-CN"
                else f", seat {parts[0]} row {parts[1]} no. {parts[2]}"
            )
    return {
        "ticketSn": _text(resource.get("ticketSn")) or _text(resource.get("id")),
        "event": _quoted(_event_title(resource), locale),
        "seat": seat_text,
    }


def _seat_text(seat: object, locale: str) -> str:
    if isinstance(seat, Mapping):
        parts = [_text(seat.get(k)) for k in ("section", "row", "number")]
        if all(parts):
            if locale == "zh-CN":
                return f"{parts[0]} {parts[1]} 排 {parts[2]} 号"
            return f"{parts[0]} row {parts[1]} no. {parts[2]}"
    return "站票" if locale == "zh-CN" else "general admission"


def _sent_tickets(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    """An order's e-tickets: a short list for the message, and each signed payload (what the
    gate scans; any QR app can show it) for the e-mail."""
    tickets = [t for t in resource.get("tickets") or [] if isinstance(t, Mapping)]
    brackets, separator = ("（{}）", "、") if locale == "zh-CN" else (" ({})", ", ")
    entries = [
        _text(t.get("ticketSn")) + brackets.format(_seat_text(t.get("seat"), locale))
        for t in tickets
    ]
    payloads = "\n".join(
        f"{_text(t.get('ticketSn'))}: {_text(t.get('qrPayload'))}" for t in tickets
    )
    return {
        "orderNo": _text(resource.get("orderNo")) or _text(resource.get("id")),
        "event": _quoted(_event_title(resource), locale),
        "starts": _time(resource.get("sessionStartsAt"), locale),
        "count": str(len(tickets)),
        "tickets": separator.join(entries),
        "payloads": payloads,
    }


def _side(value: object, locale: str) -> str:
    if not isinstance(value, Mapping):
        return ""
    gate = _text(value.get("gate")) or _text(value.get("deviceId"))
    when = _time(value.get("at"), locale)
    return f"{gate} {when}".strip()


def _conflict(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    return {
        "ticketSn": _text(resource.get("ticketSn")),
        "event": _quoted(_event_title(resource), locale),
        "first": _side(resource.get("first"), locale),
        "second": _side(resource.get("second"), locale),
    }


def _refund(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    return {
        "refundNo": _text(resource.get("refundNo")) or _text(resource.get("id")),
        "amount": _money(resource.get("amount"), locale),
    }


def _refund_review(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    opinion = _text(resource.get("opinion"))
    note = ""
    if opinion:
        note = f"审核意见：{opinion}" if locale == "zh-CN" else f"Reviewer's note: {opinion}"
    return {**_refund(resource, locale), "opinion": note}


def _offer(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    return {
        "expiresAt": _time(resource.get("offerExpiresAt") or resource.get("expiresAt"), locale),
        "event": _quoted(_event_title(resource), locale),
    }


def _merchant(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    opinion = _text(resource.get("auditOpinion")) or _text(resource.get("opinion"))
    return {
        "name": _text(resource.get("name")),
        "opinion": (f"审核意见：{opinion}" if locale == "zh-CN" else f"Reviewer's note: {opinion}")
        if opinion
        else "",
    }


def _coupon(resource: Mapping[str, Any], locale: str) -> dict[str, str]:
    coupon = resource.get("coupon")
    name = _text(resource.get("name"))
    if not name and isinstance(coupon, Mapping):
        name = _text(coupon.get("name"))
    return {"name": _quoted(name, locale)}


TEMPLATES: dict[str, Template] = {
    "order.paid": Template(
        (IN_APP, SMS, EMAIL),
        {
            "zh-CN": Text(
                "支付成功",
                "订单 {orderNo}{event} 已支付 {total}，电子票已出票，可在“我的订单”中查看。",
            ),
            "en": Text(
                "Payment received",
                "Order {orderNo}{event} is paid ({total}). Your e-tickets are under My orders.",
            ),
        },
        _order,
    ),
    "order.expired": Template(
        (IN_APP,),
        {
            "zh-CN": Text("订单已过期", "订单 {orderNo}{event} 未在规定时间内支付，已自动取消。"),
            "en": Text(
                "Order expired",
                "Order {orderNo}{event} was not paid in time and has been cancelled.",
            ),
        },
        _order,
    ),
    "order.cancelled": Template(
        (IN_APP,),
        {
            "zh-CN": Text("订单已取消", "订单 {orderNo}{event} 已取消。"),
            "en": Text("Order cancelled", "Order {orderNo}{event} has been cancelled."),
        },
        _order,
    ),
    "ticket.issued": Template(
        (IN_APP, EMAIL),
        {
            "zh-CN": Text(
                "电子票已送达",
                "您的电子票 {ticketSn}{event} 已出票{seat}。入场时出示二维码即可。",
            ),
            "en": Text(
                "Your e-ticket is ready",
                "Your e-ticket {ticketSn}{event} is ready{seat}. Show its QR code at the door.",
            ),
        },
        _ticket,
    ),
    "ticket.revoked": Template(
        (IN_APP,),
        {
            "zh-CN": Text("电子票已作废", "电子票 {ticketSn}{event} 已作废，不能再用于入场。"),
            "en": Text(
                "E-ticket revoked",
                "E-ticket {ticketSn}{event} was revoked and no longer admits entry.",
            ),
        },
        _ticket,
    ),
    "tickets.sent": Template(
        (IN_APP, EMAIL),
        {
            "zh-CN": Text(
                "您的电子票",
                "订单 {orderNo}{event} 的 {count} 张电子票：{tickets}。入场时出示二维码即可。",
                email=(
                    "订单 {orderNo}{event}（{starts}）的 {count} 张电子票：{tickets}。\n"
                    "入场时在 App 中出示二维码；以下为各票的电子票码，"
                    "可用任意二维码工具生成二维码：\n"
                    "{payloads}"
                ),
            ),
            "en": Text(
                "Your e-tickets",
                "The {count} e-ticket(s) of order {orderNo}{event}: {tickets}. "
                "Show the QR code at the door.",
                email=(
                    "The {count} e-ticket(s) of order {orderNo}{event}, {starts}: {tickets}.\n"
                    "Show the QR code in the app at the door; each ticket's code follows "
                    "(any QR tool can draw it):\n{payloads}"
                ),
            ),
        },
        _sent_tickets,
    ),
    "ticket.check_in_conflict": Template(
        (IN_APP,),
        {
            "zh-CN": Text(
                "检票冲突",
                "电子票 {ticketSn}{event} 在两处入场：{first}；{second}。请核查。",
            ),
            "en": Text(
                "Check-in conflict",
                "E-ticket {ticketSn}{event} was admitted twice: {first}; {second}. "
                "Please look into it.",
            ),
        },
        _conflict,
    ),
    "refund.requested": Template(
        (IN_APP,),
        {
            "zh-CN": Text(
                "退款申请已提交",
                "退款申请 {refundNo}（{amount}）已提交，主办方审核通过后将原路退回。",
            ),
            "en": Text(
                "Refund requested",
                "Refund {refundNo} ({amount}) was requested; once the organizer approves it, "
                "it goes back to how you paid.",
            ),
        },
        _refund,
    ),
    "refund.completed": Template(
        (IN_APP, SMS, EMAIL),
        {
            "zh-CN": Text(
                "退款成功",
                "退款 {refundNo} 已完成，{amount} 将原路退回，请留意到账。",
            ),
            "en": Text(
                "Refund completed",
                "Refund {refundNo} is complete: {amount} goes back to how you paid.",
            ),
        },
        _refund,
    ),
    "refund.rejected": Template(
        (IN_APP,),
        {
            "zh-CN": Text(
                "退款申请未通过",
                "退款申请 {refundNo} 未通过审核，电子票继续有效。{opinion}",
            ),
            "en": Text(
                "Refund not approved",
                "Refund {refundNo} was not approved; your e-tickets stay valid. {opinion}",
            ),
        },
        _refund_review,
    ),
    "waitlist.offered": Template(
        (IN_APP, SMS, EMAIL),
        {
            "zh-CN": Text(
                "候补成功，请尽快下单",
                "您候补的票{event}已为您保留，请在 {expiresAt} 前完成下单，逾期将顺延给下一位。",
            ),
            "en": Text(
                "Tickets held for you",
                "The tickets you waited for{event} are held for you: order before {expiresAt} "
                "or they go to the next person.",
            ),
        },
        _offer,
    ),
    "queue.admitted": Template(
        (IN_APP, SMS),
        {
            "zh-CN": Text("轮到您了", "排队结束{event}，请在 {expiresAt} 前选座下单。"),
            "en": Text(
                "It's your turn",
                "You are through the queue{event}: choose your seats before {expiresAt}.",
            ),
        },
        _offer,
    ),
    "merchant.audited:ACTIVE": Template(
        (IN_APP, EMAIL),
        {
            "zh-CN": Text("商户审核通过", "商户「{name}」已通过审核，可以开始售票。{opinion}"),
            "en": Text(
                "Merchant approved",
                "Your merchant account {name} is approved: you can start selling. {opinion}",
            ),
        },
        _merchant,
    ),
    "merchant.audited:REJECTED": Template(
        (IN_APP, EMAIL),
        {
            "zh-CN": Text("商户审核未通过", "商户「{name}」未通过审核。{opinion}"),
            "en": Text(
                "Merchant not approved", "Your merchant account {name} was not approved. {opinion}"
            ),
        },
        _merchant,
    ),
    "coupon.issued": Template(
        (IN_APP,),
        {
            "zh-CN": Text("优惠券已到账", "优惠券{name}已发放到您的账户，下单时可用。"),
            "en": Text(
                "A coupon for you", "Coupon{name} is in your account, ready for your next order."
            ),
        },
        _coupon,
    ),
}

NOTIFIED_TOPICS = frozenset(key.split(":", 1)[0] for key in TEMPLATES)


def template_for(topic: str, resource: Mapping[str, Any]) -> Template | None:
    """The template of ``topic``; some topics have one per resource status."""
    variant = TEMPLATES.get(f"{topic}:{resource.get('status')}")
    return variant or TEMPLATES.get(topic)


def render(template: Template, resource: Mapping[str, Any], locale: str) -> Rendered:
    text = template.texts[locale]
    fields = template.fields(resource, locale)
    title = text.title.format_map(fields)
    body = " ".join(text.body.format_map(fields).split())
    sms = text.sms.format_map(fields) if text.sms else body
    return Rendered(
        locale=locale,
        title=title,
        body=body,
        sms=f"{SMS_SIGNATURE[locale]}{sms}",
        email_subject=f"{title} - Boxoffice",
        email_body=text.email.format_map(fields).strip() if text.email else body,
    )
