"""Every HTML page under an enforced Content-Security-Policy, in Chromium: no violation.

The policy (annotator/settings/base.py, SECURE_CSP) allows scripts from static/ only (or with
the request's nonce): no inline code, no handlers in attributes, no eval. A page that still
had one (the import page's inline script, the merge button's onclick) would report a
`securitypolicyviolation` here.
"""

from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from core.models import ModelVersion, Project
from tests.e2e.test_admin_pages import busy_project
from tests.e2e.test_labeling_keyboard import CHROMIUM, browser_page, login  # noqa: F401
from tests.factories import ItemFactory, PredictionFactory
from tests.images import rgb_png

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}"),
    pytest.mark.django_db(transaction=True),
]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.lineNumber}`));
"""


def test_every_page_runs_under_the_enforced_policy_without_a_violation(browser_page, live_server):  # noqa: F811
    page = browser_page
    page.add_init_script(RECORD_VIOLATIONS)
    console = []
    page.on("console", lambda m: console.append(m.text) if "Content Security" in m.text else None)
    project, admin = busy_project()
    extra = ItemFactory(project=project, random_key=99)
    extra.image.save(f"{extra.content_hash}.png", ContentFile(rgb_png(99, size=32)))
    version = ModelVersion.objects.get(project=project, number=3)
    PredictionFactory(item=extra, model_version=version, predicted_class=project.classes.first())
    Project.objects.filter(pk=project.pk).update(current_model_version=version)
    base = f"{live_server.url}/projects/{project.pk}"

    first = page.goto(f"{live_server.url}/accounts/login/")
    policy = first.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy and "object-src 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    login(page, live_server, admin)
    pages = [
        f"{live_server.url}/",
        f"{live_server.url}/projects/new/",
        f"{base}/",
        f"{base}/dashboard/",
        f"{base}/review/?kind=disagreement",
        f"{base}/browse/",
        f"{base}/import/",
        f"{base}/label/",
        f"{live_server.url}/api/docs/",
    ]
    visited = {}
    for url in pages:
        response = page.goto(url)
        page.wait_for_load_state("networkidle")
        assert response.status == 200, url
        assert "script-src" in response.headers["content-security-policy"], url
        visited[url] = page.evaluate("() => window.__cspViolations")
    # htmx swaps under the policy too: answer the card on the labeling page by keyboard.
    page.goto(f"{base}/label/")
    item = page.get_attribute("#card", "data-item")
    page.keyboard.press("1")
    page.wait_for_function(
        "prev => document.getElementById('card').dataset.item !== prev", arg=item
    )
    visited["label after an answer"] = page.evaluate("() => window.__cspViolations")
    assert {url: v for url, v in visited.items() if v} == {} and console == []


def test_the_api_docs_render_with_their_script_served_apart(browser_page, live_server):  # noqa: F811
    page = browser_page
    page.add_init_script(RECORD_VIOLATIONS)
    project, admin = busy_project()
    login(page, live_server, admin)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15_000)
    assert page.evaluate("() => window.__cspViolations") == []
