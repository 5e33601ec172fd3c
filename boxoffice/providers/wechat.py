"""WeChat sign-in: exchange a one-time ``code`` from the client for the user's ``openid``.

``SandboxWechat`` maps codes deterministically: everything before the first ``.`` names the
person, so ``alice.1`` and ``alice.2`` are two one-time codes of the same openid. Each code
works once (like the real one). ``WechatMiniProgram`` calls ``jscode2session``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol

import httpx

from boxoffice.backends.codes import CodeStore
from boxoffice.errors import InvalidCredentials


@dataclass(frozen=True, slots=True)
class WechatIdentity:
    app_id: str
    openid: str
    unionid: str | None = None


class WechatOAuth(Protocol):
    async def exchange(self, code: str, *, app_id: str | None) -> WechatIdentity: ...


class SandboxWechat:
    default_app_id = "sandbox-app"

    def __init__(self, codes: CodeStore) -> None:
        self._codes = codes

    async def exchange(self, code: str, *, app_id: str | None) -> WechatIdentity:
        code = code.strip()
        if not code or len(code) > 128:
            raise InvalidCredentials("The WeChat code is not valid.")
        app = app_id or self.default_app_id
        if not await self._codes.put_if_absent(f"wx:code:{app}:{code}", "1", ttl_seconds=300):
            raise InvalidCredentials("The WeChat code was already used.")
        person = code.split(".", 1)[0]
        digest = hashlib.sha256(f"{app}:{person}".encode()).hexdigest()
        union = hashlib.sha256(f"union:{person}".encode()).hexdigest()
        return WechatIdentity(app_id=app, openid="o" + digest[:27], unionid="u" + union[:27])


class WechatMiniProgram:
    """The real adapter (``jscode2session``); needs an app id and secret."""

    endpoint = "https://api.weixin.qq.com/sns/jscode2session"

    def __init__(self, app_id: str, secret: str, client: httpx.AsyncClient | None = None) -> None:
        self._app_id = app_id
        self._secret = secret
        self._client = client or httpx.AsyncClient(timeout=5.0)

    async def exchange(self, code: str, *, app_id: str | None) -> WechatIdentity:
        response = await self._client.get(
            self.endpoint,
            params={
                "appid": self._app_id,
                "secret": self._secret,
                "js_code": code,
                "grant_type": "authorization_code",
            },
        )
        data = response.json()
        if response.status_code != 200 or data.get("errcode") or not data.get("openid"):
            raise InvalidCredentials("WeChat did not accept the code.")
        return WechatIdentity(
            app_id=self._app_id, openid=data["openid"], unionid=data.get("unionid")
        )
