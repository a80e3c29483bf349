"""The s3-incomplete-multipart cleanup action (add-abort-multipart-rule) against moto over HTTP."""

from __future__ import annotations

import dataclasses

import pytest

from cloudsweep import aws, cleanup
from cloudsweep.cleanup import s3_multipart
from tests import faults

from .storage_helpers import StorageHarness

ADD_RULE = s3_multipart.AddAbortMultipartRule()
PARAMS = ADD_RULE.parameters({"days_after_initiation": 3})
EXISTING = [
    {
        "ID": "expire-logs",
        "Status": "Enabled",
        "Filter": {"Prefix": "logs/"},
        "Expiration": {"Days": 30},
    },
    {
        "ID": "to-ia",
        "Status": "Enabled",
        "Filter": {"Prefix": "data/"},
        "Transitions": [{"Days": 60, "StorageClass": "STANDARD_IA"}],
    },
]


@pytest.fixture
def h(moto_endpoint: str) -> StorageHarness:
    return StorageHarness(moto_endpoint)


def bucket(h: StorageHarness, name: str, rules: list | None = None) -> str:
    s3 = h.client("s3")
    s3.create_bucket(Bucket=name)
    upload = s3.create_multipart_upload(Bucket=name, Key="big/file")["UploadId"]
    s3.upload_part(Bucket=name, Key="big/file", UploadId=upload, PartNumber=1, Body=b"x" * 1024)
    if rules is not None:
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    return name


def rules_of(h: StorageHarness, name: str) -> list | None:
    try:
        return h.client("s3").get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    except h.client("s3").exceptions.ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return None


def puts(h: StorageHarness) -> int:
    return h.recorder.count(service="s3", operation="PutBucketLifecycleConfiguration")


def run(h: StorageHarness, name: str):
    item = h.item("s3-incomplete-multipart", name)
    ctx = h.ctx()
    data = ADD_RULE.prepare(ctx, item, PARAMS, {})
    return item, ctx, data, ADD_RULE.execute(ctx, item, PARAMS, data)


def test_registered():
    assert cleanup.actions_for("s3-incomplete-multipart") == ["add-abort-multipart-rule"]


def test_without_a_configuration_the_rule_is_added_and_rollback_leaves_none(h):
    name = bucket(h, "no-config-bucket")
    _, _, data, outcome = run(h, name)

    assert data["previous_rules"] is None and not outcome.already_done
    assert rules_of(h, name) == [s3_multipart.abort_rule(3)]

    undone = ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS)
    assert not undone.already_done
    assert rules_of(h, name) is None
    assert ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS).already_done


def test_an_existing_configuration_is_kept_and_restored_exactly(h):
    """Unhappy path of the issue: a lifecycle configuration already present."""
    name = bucket(h, "has-config-bucket", EXISTING)
    before = rules_of(h, name)
    _, _, data, _ = run(h, name)

    after = rules_of(h, name)
    assert after[:-1] == before
    assert after[-1]["ID"] == s3_multipart.RULE_ID
    assert after[-1]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 3}

    ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert rules_of(h, name) == before


def test_rollback_refuses_to_overwrite_a_later_change(h):
    name = bucket(h, "changed-later-bucket")
    _, _, data, _ = run(h, name)
    changed = [*rules_of(h, name), EXISTING[0]]
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": changed}
    )

    with pytest.raises(aws.AwsError, match="not overwriting that change") as raised:
        ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS)

    # the message tells where the configuration before CloudSweep is kept
    assert "CloudSweep is in this action's rollback data (previous_rules)" in raised.value.message
    assert rules_of(h, name) == changed


def test_execute_refuses_a_configuration_changed_after_prepare(h):
    name = bucket(h, "race-bucket")
    item = h.item("s3-incomplete-multipart", name)
    ctx = h.ctx()
    data = ADD_RULE.prepare(ctx, item, PARAMS, {})
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": EXISTING}
    )

    with pytest.raises(aws.AwsError, match="changed after it was recorded") as raised:
        ADD_RULE.execute(ctx, item, PARAMS, data)

    assert raised.value.code == "LifecycleChanged"
    assert puts(h) == 0


def test_recheck_refuses_protected_and_finished_and_is_gone_when_covered(h):
    name = bucket(h, "recheck-bucket")
    item = h.item("s3-incomplete-multipart", name)
    s3 = h.client("s3")
    assert ADD_RULE.recheck(h.ctx(), item).still_waste

    s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [{"Key": "do-not-delete", "Value": "y"}]})
    assert "protected" in ADD_RULE.recheck(h.ctx(), item).reason
    s3.delete_bucket_tagging(Bucket=name)

    (upload,) = s3.list_multipart_uploads(Bucket=name)["Uploads"]
    s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    finished = ADD_RULE.recheck(h.ctx(), item)
    assert not finished.still_waste and "no incomplete multipart uploads" in finished.reason

    s3.put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [s3_multipart.abort_rule(1)]}
    )
    assert ADD_RULE.recheck(h.ctx(), item).facts["gone"] is True


def test_dry_run_writes_nothing(h):
    name = bucket(h, "dry-bucket", EXISTING)
    item = h.item("s3-incomplete-multipart", name)

    result = ADD_RULE.dry_run(h.ctx(), item, PARAMS)

    assert result.would_succeed and "2 existing rule(s)" in result.message
    assert result.calls == ("s3:PutLifecycleConfiguration",)  # what the plan lists
    assert h.mutating() == []


def test_a_lost_response_is_done_on_the_next_attempt_not_repeated(h):
    name = bucket(h, "lost-bucket", EXISTING)
    item = h.item("s3-incomplete-multipart", name)
    ctx = h.ctx()
    data = ADD_RULE.prepare(ctx, item, PARAMS, {})
    lost = faults.lose_response(h.events_of("s3"), "s3", "PutBucketLifecycleConfiguration")

    with pytest.raises(aws.AwsError) as failed:
        ADD_RULE.execute(ctx, item, PARAMS, data)
    assert aws.errors.outcome_unknown(failed.value) and lost.hits == 1

    again = ADD_RULE.execute(ctx, item, PARAMS, ADD_RULE.prepare(ctx, item, PARAMS, data))

    assert again.already_done
    # what the ledger's aws_response and note of the second attempt show
    assert (again.response, again.note) == (
        {"Bucket": name, "RuleId": s3_multipart.RULE_ID},
        f"{name} has the abort rule already (an earlier attempt)",
    )
    assert puts(h) == 1
    assert len(rules_of(h, name)) == 3


def _abort(rule_id: str, status: str = "Enabled", **where: object) -> dict:
    return {
        "ID": rule_id,
        "Status": status,
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 5},
        **where,
    }


@pytest.mark.parametrize(
    ("rule", "covers"),
    [
        (_abort("all", Filter={"Prefix": ""}), True),
        (_abort("all-legacy", Prefix=""), True),
        # An empty filter (S3: the rule applies to every object) names no prefix at all.
        (_abort("all-empty-filter", Filter={}), True),
        (_abort("disabled", "Disabled", Filter={"Prefix": ""}), False),
        (_abort("logs-only", Filter={"Prefix": "logs/"}), False),
        (_abort("tagged-only", Filter={"Tag": {"Key": "tier", "Value": "tmp"}}), False),
        (
            {"ID": "expire-only", "Status": "Enabled", "Filter": {"Prefix": ""}}
            | {"Expiration": {"Days": 30}},
            False,
        ),
    ],
    ids=lambda v: v["ID"] if isinstance(v, dict) else str(v),
)
def test_only_an_enabled_rule_for_every_upload_makes_the_bucket_done(h, rule, covers):
    """A bucket is no longer waste once one enabled rule aborts every incomplete upload; a rule
    that is disabled, limited to a prefix or a tag, or does not abort, leaves uploads behind."""
    name = bucket(h, f"rule-{rule['ID']}-bucket")
    item = h.item("s3-incomplete-multipart", name)
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [rule]}
    )

    result = ADD_RULE.recheck(h.ctx(), item)

    assert result.still_waste is not covers, result.reason
    assert bool(result.facts.get("gone")) is covers
    assert result.facts["lifecycle_rules"] == 1


def test_a_missing_bucket_is_neither_recorded_nor_dry_run(h):
    name = bucket(h, "vanishing-bucket")
    item = h.item("s3-incomplete-multipart", name)
    s3 = h.client("s3")
    (upload,) = s3.list_multipart_uploads(Bucket=name)["Uploads"]
    s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=name)

    dry = ADD_RULE.dry_run(h.ctx(), item, PARAMS)
    with pytest.raises(aws.AwsError) as raised:
        ADD_RULE.prepare(h.ctx(), item, PARAMS, {})

    assert not dry.would_succeed and "cannot read the lifecycle configuration" in dry.message
    assert raised.value.kind is aws.ErrorKind.NOT_FOUND
    # the failure the ledger and the policy's status show, naming the read that found it gone
    assert str(raised.value) == (
        "s3:GetBucketLifecycleConfiguration in us-east-1 failed (not-found, NoSuchBucket): "
        f"{name} is gone before its configuration was recorded"
    )
    assert h.mutating() == []


def test_prepare_keeps_an_earlier_record_even_of_no_configuration(h):
    """A rerun after an interrupted attempt keeps what was recorded before the first write."""
    name = bucket(h, "rerun-bucket")
    item = h.item("s3-incomplete-multipart", name)
    first = ADD_RULE.prepare(h.ctx(), item, PARAMS, {})
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": EXISTING}
    )

    again = ADD_RULE.prepare(h.ctx(), item, PARAMS, first)

    assert first["previous_rules"] is None and again == first
    assert first["days_after_initiation"] == 3


def test_rollback_refuses_when_the_rule_was_replaced_by_another_configuration(h):
    """Someone replaced the configuration (CloudSweep's rule gone with it): the rollback must not
    delete their configuration to bring back "none"."""
    name = bucket(h, "replaced-bucket")
    _, _, data, _ = run(h, name)
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": EXISTING}
    )

    with pytest.raises(aws.AwsError, match="not overwriting that change"):
        ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert rules_of(h, name) == EXISTING
    assert h.recorder.count(service="s3", operation="DeleteBucketLifecycle") == 0


# --- the bucket's transition default, S3's rule limit, and the words each step says ------------

VARIES = "varies_by_storage_class"  # not S3's default (all_storage_classes_128K)


def _lifecycle_answers(h: StorageHarness, transition_default: str) -> None:
    """GetBucketLifecycleConfiguration reports ``transition_default``, as S3 does for a bucket
    that chose it (moto always reports S3's default and ignores what is put)."""

    def answer(parsed: dict, **_: object) -> None:
        if "Rules" in parsed:
            parsed["TransitionDefaultMinimumObjectSize"] = transition_default

    h.events_of("s3").register("after-call.s3.GetBucketLifecycleConfiguration", answer)


def _put_params(h: StorageHarness) -> list[dict]:
    return [c.params for c in h.recorder.calls(operation="PutBucketLifecycleConfiguration")]


def test_the_buckets_transition_default_is_recorded_kept_and_restored(h):
    """A put without TransitionDefaultMinimumObjectSize resets the bucket to S3's default: the
    bucket's own setting must travel with both writes."""
    name = bucket(h, "transition-bucket", EXISTING)
    _lifecycle_answers(h, VARIES)
    _, _, data, outcome = run(h, name)

    ADD_RULE.rollback(h.ctx(checkpoints={}), data, PARAMS)

    assert data == {
        "bucket": name,
        "previous_rules": EXISTING,
        "previous_transition_default": VARIES,
        "rule_id": s3_multipart.RULE_ID,
        "days_after_initiation": 3,
    }
    written, restored = _put_params(h)
    assert written["TransitionDefaultMinimumObjectSize"] == VARIES
    assert written["LifecycleConfiguration"]["Rules"] == [*EXISTING, s3_multipart.abort_rule(3)]
    assert restored["TransitionDefaultMinimumObjectSize"] == VARIES
    assert restored["LifecycleConfiguration"]["Rules"] == EXISTING
    # the ledger's aws_response: the bucket, the rule and how many rules it now has
    assert {k: v for k, v in outcome.response.items() if k != "RequestId"} == {
        "Bucket": name,
        "RuleId": s3_multipart.RULE_ID,
        "Rules": 3,
    }
    assert outcome.note == f"added {s3_multipart.RULE_ID} to {name} (2 other rule(s) kept)"


def test_a_bucket_at_s3s_rule_limit_is_refused_one_below_it_is_not(h):
    full = [
        {"ID": f"expire-{n}", "Status": "Enabled", "Filter": {"Prefix": f"p{n}/"}}
        | {"Expiration": {"Days": 30}}
        for n in range(1000)
    ]
    at_limit = bucket(h, "full-bucket", full)
    below = bucket(h, "almost-full-bucket", full[:-1])

    refused = ADD_RULE.recheck(h.ctx(), h.item("s3-incomplete-multipart", at_limit))
    passed = ADD_RULE.recheck(h.ctx(), h.item("s3-incomplete-multipart", below))

    assert (refused.still_waste, refused.reason, refused.facts) == (
        False,
        "the bucket has 1000 rules, S3's maximum",
        {"lifecycle_rules": 1000, "tags": {}},
    )
    assert passed.still_waste, passed.reason


def test_a_protection_tag_without_a_value_protects_and_is_recorded_as_set(h):
    # The S3 console saves a tag with an empty value, and moto then leaves ``Value`` out of
    # GetBucketTagging's answer: the key alone must protect, recorded as the empty value it holds.
    name = bucket(h, "key-only-tag-bucket")
    h.client("s3").put_bucket_tagging(
        Bucket=name, Tagging={"TagSet": [{"Key": "do-not-delete", "Value": ""}]}
    )

    refused = ADD_RULE.recheck(h.ctx(), h.item("s3-incomplete-multipart", name))

    assert (refused.still_waste, refused.reason, refused.facts) == (
        False,
        "bucket is now protected by tag do-not-delete=",
        {"lifecycle_rules": None, "tags": {"do-not-delete": ""}},
    )


@pytest.mark.parametrize(
    ("rules", "covers"),
    [
        # An earlier rule that does not abort everything must not end the search.
        (
            [
                _abort("off", "Disabled", Filter={"Prefix": ""}),
                _abort("all", Filter={"Prefix": ""}),
            ],
            True,
        ),
        (
            [
                _abort("tagged", Filter={"Tag": {"Key": "t", "Value": "v"}}),
                _abort("all", Prefix=""),
            ],
            True,
        ),
        # A rule of the older form limited to a prefix leaves the other uploads behind.
        ([_abort("legacy-logs", Prefix="logs/")], False),
    ],
    ids=["after-a-disabled-rule", "after-a-tag-rule", "legacy-prefix"],
)
def test_every_rule_is_read_before_the_bucket_counts_as_covered(h, rules, covers):
    name = bucket(h, "several-rules-bucket")
    item = h.item("s3-incomplete-multipart", name)
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": rules}
    )

    result = ADD_RULE.recheck(h.ctx(), item)

    assert result.still_waste is not covers, result.reason


def test_the_recheck_says_why_in_the_words_the_history_shows(h):
    s3 = h.client("s3")
    waste = bucket(h, "worded-waste-bucket")
    covered = bucket(h, "worded-covered-bucket", [s3_multipart.abort_rule(1)])
    protected = bucket(h, "worded-protected-bucket")
    finished = bucket(h, "worded-finished-bucket")
    gone = bucket(h, "worded-gone-bucket")
    items = {b: h.item("s3-incomplete-multipart", b) for b in (waste, protected, finished, gone)}
    items[covered] = dataclasses.replace(items[waste], resource_id=covered)
    s3.put_bucket_tagging(
        Bucket=protected, Tagging={"TagSet": [{"Key": "do-not-delete", "Value": "y"}]}
    )
    for b in (finished, gone):
        (upload,) = s3.list_multipart_uploads(Bucket=b)["Uploads"]
        s3.abort_multipart_upload(Bucket=b, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=gone)

    found = {b: ADD_RULE.recheck(h.ctx(), item) for b, item in items.items()}

    assert {b: (r.still_waste, r.reason, r.facts) for b, r in found.items()} == {
        waste: (
            True,
            "still holds incomplete uploads no rule aborts",
            {"lifecycle_rules": None, "tags": {}},
        ),
        covered: (
            False,
            "a lifecycle rule aborts incomplete uploads already",
            {"lifecycle_rules": 1, "gone": True},
        ),
        protected: (
            False,
            "bucket is now protected by tag do-not-delete=y",
            {"lifecycle_rules": None, "tags": {"do-not-delete": "y"}},
        ),
        finished: (
            False,
            "the bucket has no incomplete multipart uploads any more",
            {"lifecycle_rules": None, "tags": {}},
        ),
        gone: (False, "bucket no longer exists", {"gone": True}),
    }


def test_the_dry_run_says_what_it_would_write(h):
    bare = bucket(h, "dry-bare-bucket")
    configured = bucket(h, "dry-configured-bucket", EXISTING)
    gone = bucket(h, "dry-gone-bucket")
    items = {b: h.item("s3-incomplete-multipart", b) for b in (bare, configured, gone)}
    s3 = h.client("s3")
    (upload,) = s3.list_multipart_uploads(Bucket=gone)["Uploads"]
    s3.abort_multipart_upload(Bucket=gone, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=gone)

    results = {b: ADD_RULE.dry_run(h.ctx(), item, PARAMS) for b, item in items.items()}

    rule = s3_multipart.RULE_ID
    # calls: what the dry run's history row records as checked, a failed one included
    checked = ("s3:PutLifecycleConfiguration",)
    assert {b: (r.would_succeed, r.message, r.calls) for b, r in results.items()} == {
        bare: (
            True,
            f"would add rule {rule} (abort after 3 days) to 0 existing rule(s) of {bare} "
            "(S3 has no DryRun: checked by reading)",
            checked,
        ),
        configured: (
            True,
            f"would add rule {rule} (abort after 3 days) to 2 existing rule(s) of {configured} "
            "(S3 has no DryRun: checked by reading)",
            checked,
        ),
        gone: (
            False,
            "cannot read the lifecycle configuration: s3:GetBucketLifecycleConfiguration in "
            "us-east-1 failed (not-found, NoSuchBucket): The specified bucket does not exist",
            checked,
        ),
    }
    assert h.mutating() == []


def test_a_throttled_read_stops_the_dry_run_rather_than_answering_no(h):
    name = bucket(h, "throttled-dry-bucket")
    item = h.item("s3-incomplete-multipart", name)
    faults.fail_with(
        h.events_of("s3"),
        "before-send.s3.GetBucketLifecycleConfiguration",
        status=503,
        body=b"<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>",
    )

    with pytest.raises(aws.AwsError) as raised:
        ADD_RULE.dry_run(h.ctx(), item, PARAMS)

    assert raised.value.kind is aws.ErrorKind.THROTTLED


def test_each_step_says_what_it_did_and_the_refusals_why(h):
    bare = bucket(h, "noted-bare-bucket")
    configured = bucket(h, "noted-configured-bucket", EXISTING)
    _, ctx, bare_data, _ = run(h, bare)
    _, _, configured_data, _ = run(h, configured)

    removed = ADD_RULE.rollback(h.ctx(checkpoints={}), bare_data, PARAMS)
    restored = ADD_RULE.rollback(h.ctx(checkpoints={}), configured_data, PARAMS)
    again = ADD_RULE.rollback(h.ctx(checkpoints={}), configured_data, PARAMS)
    h.client("s3").put_bucket_lifecycle_configuration(
        Bucket=bare, LifecycleConfiguration={"Rules": EXISTING}
    )
    item = h.item("s3-incomplete-multipart", bare)
    with pytest.raises(aws.AwsError) as changed:
        ADD_RULE.execute(ctx, item, PARAMS, bare_data)
    with pytest.raises(aws.AwsError) as not_undone:
        ADD_RULE.rollback(h.ctx(checkpoints={}), bare_data, PARAMS)

    assert (removed.note, restored.note, again.note) == (
        f"{bare} has no lifecycle configuration again",
        f"{configured} has its 2 recorded rule(s) again",
        f"{configured} has its recorded rules",
    )
    assert again.already_done and again.response == {"Bucket": configured}
    # the ledger's aws_response of each rollback names the bucket beside S3's request ID
    assert {"removed": removed.response, "restored": restored.response} == {
        "removed": {"Bucket": bare, "RequestId": removed.response.get("RequestId")},
        "restored": {"Bucket": configured, "RequestId": restored.response.get("RequestId")},
    }
    assert str(changed.value) == (
        "s3:PutBucketLifecycleConfiguration in us-east-1 failed (terminal, LifecycleChanged): "
        f"the lifecycle configuration of {bare} changed after it was recorded; nothing was "
        "written: the next run records it again"
    )
    assert str(not_undone.value) == (
        "s3:PutBucketLifecycleConfiguration in us-east-1 failed (terminal, LifecycleChanged): "
        f"the lifecycle configuration of {bare} was changed after CloudSweep added its rule; "
        "not overwriting that change. The configuration before CloudSweep is in this action's "
        "rollback data (previous_rules)"
    )
