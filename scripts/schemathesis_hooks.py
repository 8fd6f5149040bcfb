"""schemathesis checks for ksmfleet (loaded by scripts/schemathesis.sh via SCHEMATHESIS_HOOKS)."""
import schemathesis

WRITING = {"POST", "PUT", "PATCH", "DELETE"}


@schemathesis.check
def viewer_never_writes(ctx, response, case):
    """Run with a viewer credential: no writing route may answer 2xx (issue 14)."""
    if case.method.upper() in WRITING and 200 <= response.status_code < 300:
        raise AssertionError(
            f"a viewer credential got {response.status_code} on {case.method.upper()} {case.formatted_path}"
        )


@schemathesis.check
def refusals_are_401_or_403_json(ctx, response, case):
    """A refused call is a JSON error body with code unauthorized (401) or forbidden (403; a host
    whose registration an admin rejected gets registration_rejected)."""
    if response.status_code in (401, 403):
        body = response.json()
        code = body.get("error", {}).get("code")
        expected = {"unauthorized"} if response.status_code == 401 else {"forbidden", "registration_rejected"}
        if code not in expected:
            raise AssertionError(f"{response.status_code} with error code {code!r}, expected one of {sorted(expected)}")
