"""Who may use the wiki (issue 10): the `access_policy` and `allow_any_user` settings reach the
MCP server's environment (MCP_ALLOW, MCP_ALLOW_ANY_USER), the WorkOS API key reaches it as a
secret (WORKOS_API_KEY: commit authors' names), and a stack with OAuth but no policy is
refused before anything is created, as the function itself would refuse to start."""

import json

import pytest

from conftest import WORKOS_KEY

OAUTH = {"wikibot:authkit_domain": "acme-123.authkit.app"}


def mcp_env(stack):
    return stack.one("aws:lambda/function:Function", "mcp-server").plain("environment")["variables"]


def test_the_policy_reaches_the_function_as_mcp_allow(run_stack):
    stack = run_stack(
        {
            **OAUTH,
            "wikibot:access_policy": " user:user_01ABC=rw,domain:example.com=ro,\n org:org_01XYZ=RO , email:Ada@Example.com=rw, domain:bücher.example=ro",
        }
    )
    env = mcp_env(stack)
    assert env["MCP_ALLOW"] == "user:user_01ABC=rw, domain:example.com=ro, org:org_01XYZ=RO, email:Ada@Example.com=rw, domain:bücher.example=ro"
    assert env["MCP_ALLOW_ANY_USER"] == "false"
    assert env["WORKOS_API_KEY"] == WORKOS_KEY


def test_a_yaml_list_is_accepted_too(run_stack):
    entries = ["user:user_01ABC=rw", "domain:example.com=ro"]
    stack = run_stack({**OAUTH, "wikibot:access_policy": json.dumps(entries)})
    assert mcp_env(stack)["MCP_ALLOW"] == "user:user_01ABC=rw, domain:example.com=ro"


def test_allow_any_user_opens_the_wiki_explicitly(run_stack):
    env = mcp_env(run_stack({**OAUTH, "wikibot:allow_any_user": "true"}))
    assert env["MCP_ALLOW_ANY_USER"] == "true"
    assert env["MCP_ALLOW"] == ""


def test_the_workos_key_stays_secret_in_the_environment(run_stack):
    stack = run_stack({**OAUTH, "wikibot:allow_any_user": "true"})
    assert stack.secret(stack.program["functions"].mcp_server.environment)


def test_without_oauth_no_policy_is_needed(dev):
    env = mcp_env(dev)
    assert env["AUTHKIT_DOMAIN"] == ""
    assert (env["MCP_ALLOW"], env["MCP_ALLOW_ANY_USER"]) == ("", "false")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (OAUTH, "say who may use the wiki.*allow_any_user true"),
        ({**OAUTH, "wikibot:access_policy": "  ,  "}, "say who may use the wiki"),
        (
            {**OAUTH, "wikibot:access_policy": "user:user_01ABC=rw", "wikibot:allow_any_user": "true"},
            "makes access_policy pointless",
        ),
        ({"wikibot:access_policy": "user:user_01ABC=rw"}, "authkit_domain is not set"),
        ({"wikibot:allow_any_user": "true"}, "authkit_domain is not set"),
        ({**OAUTH, "wikibot:access_policy": "user:user_01ABC"}, "'user:user_01ABC' is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "user:01ABC=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "team:x=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "domain:*.example.com=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "domain:@example.com=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "email:ada=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "domain:exa_mple.com=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "domain:-example.com=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "email:ada@example..com=rw"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": "user:user_01ABC=admin"}, "is not an entry"),
        ({**OAUTH, "wikibot:access_policy": '["user:user_01ABC=rw", 3]'}, "must be a string entry"),
    ],
)
def test_oauth_without_a_usable_policy_is_refused(run_stack, config, message):
    with pytest.raises(Exception, match=message):
        run_stack(config)
