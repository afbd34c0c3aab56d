import keyrack


def test_all_is_sorted_and_complete():
    assert sorted(keyrack.__all__) == keyrack.__all__
    for name in keyrack.__all__:
        assert hasattr(keyrack, name)
    assert {
        "ApiKey",
        "ApiKeyRejected",
        "AuthenticationFailed",
        "BackendUnavailable",
        "ConfigurationError",
        "Conflict",
        "InvalidInput",
        "KeyGuard",
        "KeyStatus",
        "Keyrack",
        "KeyrackError",
        "NotFound",
        "Outcome",
        "PermissionDenied",
        "Settings",
        "Tenant",
        "VerifyResult",
        "__version__",
        "create_app",
    } == set(keyrack.__all__)
