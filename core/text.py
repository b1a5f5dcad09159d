"""User-supplied text: checks shared by request parsing (core/middleware.py) and the
services that store names (core/services/classes.py), and the one Markdown renderer."""

from django.utils.safestring import SafeString, mark_safe

CONTROL_CHARACTERS = frozenset(chr(c) for c in range(32)) | {"\x7f"}


def has_control_characters(text: str) -> bool:
    """NUL, escape, DEL and the rest of C0: never part of a name or a parameter of ours (and
    PostgreSQL refuses NUL in text with an error)."""
    return any(c in CONTROL_CHARACTERS for c in text)


# Markdown that project admins write (guidelines, class descriptions) and every member reads:
# rendered by Python-Markdown, then cleaned by nh3 (ammonia) down to these tags, so no
# script, style, event handler, iframe or javascript: link can reach an annotator's page.
MARKDOWN_TAGS = frozenset(
    "p br hr h1 h2 h3 h4 strong em b i code pre blockquote ul ol li a".split()
    + "table thead tbody tr th td".split()
)


def markdown_html(text: str) -> SafeString:
    """Safe HTML for `text` written in Markdown (links open without the page's referrer)."""
    import markdown
    import nh3

    html = markdown.markdown(text or "", extensions=["tables", "sane_lists"], output_format="html")
    return mark_safe(  # noqa: S308 - nh3 has removed everything but MARKDOWN_TAGS
        nh3.clean(
            html,
            tags=set(MARKDOWN_TAGS),
            attributes={"a": {"href", "title"}, "th": {"align"}, "td": {"align"}},
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    )
