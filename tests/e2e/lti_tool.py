"""An LTI 1.3 tool played by pylti1p3, driven against a running gradebook.

Usage: python lti_tool.py CONFIG_JSON

CONFIG_JSON holds: base (the platform URL and issuer), sis_token, course_id,
learner, instructor, resource_link_id (a link the SIS made, with a line
item), client_id, deployment_id, tool_private_key (PEM), platform_jwks (used
when the platform does not publish /.well-known/jwks.json), launch_url and
deep_linking_url (the tool's registered redirect URIs). With "mode":
"score" it only launches and posts one score (score, score_maximum,
timestamp) through AGS, then reads the results back.

It runs, with pylti1p3's own classes (OIDCLogin, MessageLaunch, DeepLink,
DeepLinkResource, and get_ags()/get_nrps() when the platform offers the
services), the flows a real tool goes through, checks what it gets, prints
one JSON object describing what it saw on stdout and exits 0; any failure
prints the reason on stderr and exits 1.
"""

import json
import sys
import time
import uuid
from html.parser import HTMLParser
from urllib.parse import parse_qsl, urlsplit

import requests
from cryptography.hazmat.primitives import serialization
from pylti1p3.cookie import CookieService
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.grade import Grade
from pylti1p3.lineitem import LineItem
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.oidc_login import OIDCLogin
from pylti1p3.redirect import Redirect
from pylti1p3.request import Request
from pylti1p3.session import SessionService
from pylti1p3.tool_config import ToolConfDict


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


# --- small adapters: pylti1p3 without a web framework ----------------------


class Browser:
    """One user's browser: the tool's session and cookies live here."""

    def __init__(self):
        self.session = {}
        self.cookies = {}


class ToolRequest(Request):
    def __init__(self, params, browser):
        self._params = dict(params)
        self._browser = browser

    @property
    def session(self):
        return self._browser.session

    def is_secure(self):
        return False

    def get_param(self, key):
        return self._params.get(key)


class Cookies(CookieService):
    def __init__(self, browser):
        self._jar = browser.cookies

    def _name(self, name):
        return f"{self._cookie_prefix}-{name}"

    def get_cookie(self, name):
        return self._jar.get(self._name(name))

    def set_cookie(self, name, value, exp=3600):
        self._jar[self._name(name)] = value


class UrlRedirect(Redirect):
    def __init__(self, url):
        self._url = url

    def do_redirect(self):
        return self._url

    def do_js_redirect(self):
        return self._url

    def set_redirect_url(self, location):
        self._url = location

    def get_redirect_url(self):
        return self._url


class Login(OIDCLogin):
    def get_redirect(self, url):
        return UrlRedirect(url)


class Launch(MessageLaunch):
    def _get_request_param(self, key):
        return self._request.get_param(key)


class FormReader(HTMLParser):
    """Reads the auto-posting form of the platform's answer."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.attrs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        if tag == "form":
            self.action = a.get("action")
        if tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")


# --- the flows --------------------------------------------------------------


class Tool:
    def __init__(self, cfg):
        self.cfg = cfg
        self.base = cfg["base"]
        self.http = requests.Session()
        self.services = self._platform_has_services()
        conf = {
            "default": True,
            "client_id": cfg["client_id"],
            "auth_login_url": self.base + "/lti/authorize",
            "auth_token_url": self.base + "/lti/token",
            "deployment_ids": [cfg["deployment_id"]],
        }
        if self._url_answers("/.well-known/jwks.json"):
            conf["key_set_url"] = self.base + "/.well-known/jwks.json"
            conf["key_set"] = None
        else:
            conf["key_set_url"] = None
            conf["key_set"] = cfg["platform_jwks"]
        self.key_source = "key_set_url" if conf["key_set_url"] else "key_set"
        self.conf = ToolConfDict({self.base: [conf]})
        private = cfg["tool_private_key"]
        public = (
            serialization.load_pem_private_key(private.encode(), password=None)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM,
                serialization.PublicFormat.SubjectPublicKeyInfo,
            )
            .decode()
        )
        self.conf.set_private_key(self.base, private, client_id=cfg["client_id"])
        self.conf.set_public_key(self.base, public, client_id=cfg["client_id"])

    def _url_answers(self, path):
        try:
            return self.http.get(self.base + path, timeout=10).status_code == 200
        except requests.RequestException:
            return False

    def _platform_has_services(self):
        return self._url_answers("/.well-known/openid-configuration")

    def start_launch(self, user_id, kind, resource_link_id=None):
        """The SIS asks the platform for a launch (as a user clicking the link)."""
        body = {
            "tool_id": self.cfg["tool_id"],
            "course_id": self.cfg["course_id"],
            "user_id": user_id,
            "kind": kind,
        }
        if resource_link_id:
            body["resource_link_id"] = resource_link_id
        res = self.http.post(
            self.base + "/api/launches",
            json=body,
            headers={"Authorization": "Bearer " + self.cfg["sis_token"]},
            timeout=30,
        )
        check(res.status_code == 200, f"POST /api/launches: {res.status_code} {res.text}")
        url = res.json()["login_initiation_url"]
        return dict(parse_qsl(urlsplit(url).query))

    def launch(self, user_id, kind, resource_link_id=None):
        """Third-party initiated login through to a validated MessageLaunch."""
        login_params = self.start_launch(user_id, kind, resource_link_id)
        check(login_params.get("iss") == self.base, f"iss {login_params.get('iss')!r} != {self.base!r}")
        target = login_params["target_link_uri"]
        expected = self.cfg["launch_url"] if kind == "resource_link" else self.cfg["deep_linking_url"]
        check(target == expected, f"target_link_uri {target!r}, expected {expected!r}")

        browser = Browser()
        request = ToolRequest(login_params, browser)
        auth_url = Login(request, self.conf, SessionService(request), Cookies(browser)).redirect(target)
        check(auth_url.startswith(self.base + "/lti/authorize?"), f"login went to {auth_url}")

        res = self.http.get(auth_url, timeout=30)
        check(res.status_code == 200, f"authorize: {res.status_code} {res.text[:500]}")
        form = FormReader()
        form.feed(res.text)
        check(form.action == target, f"the form posts to {form.action!r}, not {target!r}")
        check("id_token" in form.fields, f"no id_token in {res.text[:500]}")

        request = ToolRequest(
            {"id_token": form.fields["id_token"], "state": form.fields.get("state")}, browser
        )
        launch = Launch(request, self.conf, session_service=SessionService(request), cookie_service=Cookies(browser))
        data = launch.get_launch_data()  # validates: state, nonce, signature, registration, deployment, message
        return launch, data


def claim(data, name):
    return data.get("https://purl.imsglobal.org/spec/lti/claim/" + name)


def resource_link_launch(tool):
    cfg = tool.cfg
    launch, data = tool.launch(cfg["learner"], "resource_link", cfg["resource_link_id"])
    check(launch.is_resource_launch(), "not a resource link launch")
    check(data["sub"] == cfg["learner"], f"sub {data['sub']!r}")
    check(claim(data, "resource_link")["id"] == cfg["resource_link_id"], "resource_link.id")
    check(launch.has_ags(), "no AGS claim")
    check(launch.has_nrps(), "no NRPS claim")
    ags = data["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]
    return {
        "message_type": claim(data, "message_type"),
        "sub": data["sub"],
        "roles": claim(data, "roles"),
        "context_id": claim(data, "context")["id"],
        "resource_link_id": claim(data, "resource_link")["id"],
        "custom": claim(data, "custom"),
        "lineitems": ags.get("lineitems"),
        "lineitem": ags.get("lineitem"),
        "scope": ags.get("scope"),
        "launch": launch,
    }


class ResultPage(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []
        self.line_items = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "data-resource-link-id" in a:
            self.links.append(a["data-resource-link-id"])
        if "data-line-item-id" in a:
            self.line_items.append(a["data-line-item-id"])


def deep_linking(tool):
    cfg = tool.cfg
    launch, data = tool.launch(cfg["instructor"], "deep_linking")
    check(launch.is_deep_link_launch(), "not a deep-linking launch")
    settings = data["https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"]

    custom_id = str(uuid.uuid4())
    quiz = (
        DeepLinkResource()
        .set_url(cfg["launch_url"])
        .set_title("E2E quiz")
        .set_custom_params({"id": custom_id})
        .set_lineitem(
            LineItem().set_tag("grade").set_score_maximum(20).set_label("E2E quiz column").set_resource_id("e2e-quiz")
        )
    )
    reading = DeepLinkResource().set_url(cfg["launch_url"]).set_title("E2E reading")
    jwt_val = launch.get_deep_link().get_response_jwt([quiz, reading])

    res = tool.http.post(settings["deep_link_return_url"], data={"JWT": jwt_val}, timeout=30)
    check(res.status_code == 200, f"deep-linking return: {res.status_code} {res.text[:500]}")
    page = ResultPage()
    page.feed(res.text)
    check(len(page.links) == 2 and len(page.line_items) == 1, f"result page: {res.text}")
    check("E2E quiz column" in res.text and "out of 20" in res.text, f"result page: {res.text}")

    # The same response again is refused.
    again = tool.http.post(settings["deep_link_return_url"], data={"JWT": jwt_val}, timeout=30)
    check(again.status_code == 400, f"replayed deep-linking response: {again.status_code}")

    # Launch the new graded link as the learner: custom.id and lineitem come back.
    quiz_link = page.links[0]
    line_item_id = page.line_items[0]
    relaunch, rdata = tool.launch(cfg["learner"], "resource_link", quiz_link)
    ags = rdata["https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"]
    check(claim(rdata, "custom") == {"id": custom_id}, f"custom {claim(rdata, 'custom')!r}")
    check(ags.get("lineitem", "").endswith("/lineitems/" + line_item_id), f"lineitem {ags.get('lineitem')!r}")
    return {
        "accept_types": settings["accept_types"],
        "return_url": settings["deep_link_return_url"],
        "created_links": page.links,
        "created_line_item": line_item_id,
        "custom_id": custom_id,
        "relaunch_lineitem": ags.get("lineitem"),
        "relaunch": relaunch,
    }


def services(tool, launch, learner):
    """AGS and NRPS through pylti1p3, as a tool syncing grades and roster."""
    ags = launch.get_ags()
    items = ags.get_lineitems()
    mine = ags.get_lineitem()  # the launch's own lineitem URL
    check(any(i.get("id") == mine.get_id() for i in items), "the launch's line item is listed")
    grade = (
        Grade()
        .set_score_given(15)
        .set_score_maximum(20)
        .set_timestamp(time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime()))
        .set_activity_progress("Completed")
        .set_grading_progress("FullyGraded")
        .set_user_id(learner)
    )
    posted = ags.put_grade(grade)
    results = ags.get_grades()
    check(any(r.get("userId") == learner for r in results), f"results {results!r}")
    # Results come back in the line item's scale, as on other platforms.
    maximum = next(i.get("scoreMaximum") for i in items if i.get("id") == mine.get_id())
    check(
        all(r.get("resultMaximum") == maximum for r in results)
        and any(r.get("userId") == learner and r.get("resultScore") == 15 * maximum / 20 for r in results),
        f"results {results!r} not in the scale of the line item's {maximum!r}",
    )
    members = launch.get_nrps().get_members()
    check(any(m.get("user_id") == learner for m in members), f"members {members!r}")
    return {
        "lineitems": len(items),
        "score_status": "posted",
        "score_body": posted.get("body"),
        "results": results,
        "members": sorted(m.get("user_id") for m in members),
    }


def score_only(tool):
    """One launch, then one score and the results through AGS, as the tool
    does each time a learner finishes: what a platform that moved to
    another store must go on serving without the tool being told."""
    cfg = tool.cfg
    check(tool.services, "the platform does not answer /.well-known/openid-configuration")
    rl = resource_link_launch(tool)
    ags = rl["launch"].get_ags()
    grade = (
        Grade()
        .set_score_given(cfg["score"])
        .set_score_maximum(cfg["score_maximum"])
        .set_timestamp(cfg["timestamp"])
        .set_activity_progress("Completed")
        .set_grading_progress("FullyGraded")
        .set_user_id(cfg["learner"])
    )
    ags.put_grade(grade)
    return {
        "key_source": tool.key_source,
        "resource_link": {k: v for k, v in rl.items() if k != "launch"},
        "results": ags.get_grades(),
    }


def main():
    cfg = json.loads(sys.argv[1])
    tool = Tool(cfg)
    if cfg.get("mode") == "score":
        print(json.dumps(score_only(tool)))
        return
    rl = resource_link_launch(tool)
    dl = deep_linking(tool)
    out = {
        "key_source": tool.key_source,
        "resource_link": {k: v for k, v in rl.items() if k != "launch"},
        "deep_linking": {k: v for k, v in dl.items() if k != "relaunch"},
    }
    # The services land separately; run them only when the platform has them.
    if tool.services:
        out["services"] = services(tool, dl["relaunch"], cfg["learner"])
    else:
        out["services"] = "skipped: the platform does not answer /.well-known/openid-configuration"
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report any failure, pylti1p3's included, and fail
        import traceback

        traceback.print_exc()
        print(f"e2e tool failed: {e}", file=sys.stderr)
        sys.exit(1)
