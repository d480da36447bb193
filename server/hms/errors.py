"""What a failed 100ms REST call raises.

Every error names the call that failed (`create_room(name='evt1-r1')`), the HTTP status when
there was an answer, 100ms's `message` and `details` (contract §2.1's error body), so
`str(err)` alone tells what went wrong:

    create_room(name='evt1-r1'): 400 Invalid body param: template. Use template_id (details: ...)

    HmsError                  call, status, message, details, attempts, retry_after_s
    ├── HmsUnavailable        5xx, timeout or connection error, after the retries (status None
    │                         when nothing was answered); `temporary`
    ├── HmsRateLimited        429 after the retries, or a Retry-After longer than we wait; `temporary`
    ├── HmsAuthError          401/403, still, after one retry with a freshly minted token
    ├── HmsNotFound           404
    ├── HmsBadRequest         400, 409, 422: the request itself is wrong; retrying will not help
    └── HmsProtocolError      an answer that is not the JSON the contract describes
"""

from __future__ import annotations

from collections.abc import Sequence


class HmsError(Exception):
    """A 100ms REST call failed; `temporary` says whether trying again later may succeed."""

    temporary: bool = False

    def __init__(
        self,
        call: str,
        status: int | None,
        message: str,
        details: Sequence[str] = (),
        *,
        retry_after_s: float | None = None,
        attempts: int = 1,
    ) -> None:
        self.call = call
        self.status = status
        self.message = message
        self.details = tuple(details)
        self.retry_after_s = retry_after_s
        self.attempts = attempts
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.call}: "
        if self.status is not None:
            text += f"{self.status} "
        text += self.message
        if self.details:
            text += f" (details: {'; '.join(self.details)})"
        if self.attempts > 1:
            text += f" [after {self.attempts} attempts]"
        if self.retry_after_s is not None:
            text += f" (retry after {self.retry_after_s:g}s)"
        return text


class HmsUnavailable(HmsError):
    temporary = True


class HmsRateLimited(HmsError):
    temporary = True


class HmsAuthError(HmsError):
    pass


class HmsNotFound(HmsError):
    pass


class HmsBadRequest(HmsError):
    pass


class HmsProtocolError(HmsError):
    pass


def error_for_status(status: int) -> type[HmsError]:
    """The class for a final (not retried, or retried in vain) HTTP answer."""
    if status == 429:
        return HmsRateLimited
    if status >= 500:
        return HmsUnavailable
    if status in (401, 403):
        return HmsAuthError
    if status == 404:
        return HmsNotFound
    if status in (400, 409, 422):
        return HmsBadRequest
    return HmsError
