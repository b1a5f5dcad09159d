"""Path converters: an object id in a URL is a number a database column can hold.

Django's `int` converter takes any run of digits, and a 21-digit id reached SQLite as an
OverflowError (a 500, found by schemathesis). `id` matches 1 to 18 digits, which every
64-bit integer column holds, so a longer one is a plain 404 before any query.
"""

MAX_ID = 10**18 - 1  # the largest id a URL, form or API field may name


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
