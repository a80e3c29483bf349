"""Rollback of a deleted ELBv2 load balancer: its target groups (re-attached, or recreated with
their targets), the load balancer, listeners with certificates, and rules, each step finding what
an earlier run of the same rollback made.

Called by ``cleanup.load_balancer.DeleteLoadBalancer.rollback`` with the rollback data that
``lb_elbv2.record`` wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudsweep import aws
from cloudsweep.cleanup import common
from cloudsweep.cleanup.base import ACTION_TAG, Outcome
from cloudsweep.cleanup.lb_common import ELBV2, Restore, name_taken, not_found, tag_list


class Elbv2Restore(Restore):
    """Rebuild an ELBv2 load balancer, its listeners, rules and missing target groups."""

    service = ELBV2

    def run(self) -> Outcome:
        old = self.data["load_balancer"]
        groups = self.target_groups()
        lb, reused = self.load_balancer()
        arn = lb["LoadBalancerArn"]
        attributes = [
            {"Key": a["Key"], "Value": a["Value"]}
            for a in self.data.get("attributes") or []
            # an empty value means "not set"; AWS refuses some keys with an empty value
            if a.get("Value") not in (None, "")
        ]
        if attributes:
            self.call(
                "ModifyLoadBalancerAttributes",
                LoadBalancerArn=arn,
                Attributes=attributes,
            )
        self.listeners(arn, groups)
        return Outcome(
            {
                "load_balancer_arn": arn,
                "dns_name": lb.get("DNSName"),
                "previous_arn": old.get("LoadBalancerArn"),
                "previous_dns_name": old.get("DNSName"),
                "target_groups": groups,
            },
            already_done=reused,
            note=(
                f"recreated load balancer {old['LoadBalancerName']} as {arn}, DNS name "
                f"{lb.get('DNSName')}; AWS cannot reuse the old ARN or DNS name "
                f"({old.get('DNSName')}): update DNS records and clients that used it"
                + ("".join(f"; {n}" for n in self.notes))
            ),
        )

    def tagged(self, arn: str) -> bool:
        answer = self.call("DescribeTags", ResourceArns=[arn])
        for entry in answer.get("TagDescriptions") or []:
            if common.tag_map(entry.get("Tags")).get(ACTION_TAG) == self.marker:
                return True
        return False

    def target_groups(self) -> dict[str, str]:
        """Recorded target group ARN -> the ARN to use now (the same one, or a recreated one)."""
        mapping: dict[str, str] = {}
        for group in self.data.get("target_groups") or []:
            old_arn = group["TargetGroupArn"]
            try:
                self.call("DescribeTargetGroups", TargetGroupArns=[old_arn])
                mapping[old_arn] = old_arn
                continue
            except aws.AwsError as exc:
                if not not_found(exc):
                    raise
            mapping[old_arn] = self.recreate_group(group)
        return mapping

    def recreate_group(self, group: Mapping[str, Any]) -> str:
        name = group["TargetGroupName"]
        try:
            found = self.call("DescribeTargetGroups", Names=[name])
            existing = found["TargetGroups"][0]["TargetGroupArn"]
        except aws.AwsError as exc:
            if not not_found(exc):
                raise
            existing = None
        if existing is not None:
            if not self.tagged(existing):
                raise aws.AwsError(
                    aws.ErrorKind.TERMINAL,
                    service=ELBV2,
                    operation="CreateTargetGroup",
                    code="DuplicateTargetGroupName",
                    message=f"a target group named {name} exists and was not made by this "
                    "rollback; rename or delete it, then roll back again",
                    region=self.ctx.region,
                )
            # Made by an earlier attempt of this rollback, which may have stopped before it set
            # the group up: set it up again (both calls are safe to repeat).
            self.set_up(str(existing), group)
            self.notes.append(f"target group {name} was gone and was recreated as {existing}")
            return str(existing)
        kwargs: dict[str, Any] = {"Name": name, "TargetType": group.get("TargetType", "instance")}
        for key in (
            "Protocol",
            "ProtocolVersion",
            "Port",
            "VpcId",
            "HealthCheckProtocol",
            "HealthCheckPort",
            "HealthCheckEnabled",
            "HealthCheckPath",
            "HealthCheckIntervalSeconds",
            "HealthCheckTimeoutSeconds",
            "HealthyThresholdCount",
            "UnhealthyThresholdCount",
            "Matcher",
            "IpAddressType",
        ):
            if group.get(key) not in (None, ""):
                kwargs[key] = group[key]
        tags = {**common.tag_map(group.get("Tags")), ACTION_TAG: self.marker}
        created = self.call("CreateTargetGroup", Tags=tag_list(tags), **kwargs)
        arn = str(created["TargetGroups"][0]["TargetGroupArn"])
        self.set_up(arn, group)
        self.notes.append(f"target group {name} was gone and was recreated as {arn}")
        return arn

    def set_up(self, arn: str, group: Mapping[str, Any]) -> None:
        """Give a recreated target group its recorded attributes and targets. Setting attributes
        is idempotent, and registering a registered target is a no-op in AWS."""
        attributes = [
            {"Key": a["Key"], "Value": a["Value"]}
            for a in group.get("Attributes") or []
            if a.get("Value") not in (None, "")
        ]
        if attributes:
            self.call(
                "ModifyTargetGroupAttributes",
                TargetGroupArn=arn,
                Attributes=attributes,
            )
        self.register(arn, group["TargetGroupName"], list(group.get("Targets") or []))

    def register(self, group_arn: str, name: str, targets: list[dict[str, Any]]) -> None:
        """Register the recorded targets; one that AWS refuses (a stopped or terminated
        instance) is named in the outcome note rather than failing the whole rollback."""
        if not targets:
            return
        try:
            self.call("RegisterTargets", TargetGroupArn=group_arn, Targets=targets)
            return
        except aws.AwsError as exc:
            if exc.kind.retryable:
                raise
        # One refused target fails the whole call: register one by one to keep the others.
        for target in targets:
            try:
                self.call(
                    "RegisterTargets",
                    TargetGroupArn=group_arn,
                    Targets=[target],
                )
            except aws.AwsError as exc:
                if exc.kind.retryable:
                    raise
                self.notes.append(f"target {target['Id']} of {name} not registered: {exc.message}")

    def load_balancer(self) -> tuple[dict[str, Any], bool]:
        old = self.data["load_balancer"]
        name = old["LoadBalancerName"]
        try:
            found = self.call("DescribeLoadBalancers", Names=[name])
            existing = dict(found["LoadBalancers"][0])
        except aws.AwsError as exc:
            if not not_found(exc):
                raise
            existing = None
        if existing is not None:
            if not self.tagged(existing["LoadBalancerArn"]):
                raise name_taken(self.ctx, ELBV2, name)
            return existing, True
        lb_type = old.get("Type", "application")
        kwargs: dict[str, Any] = {"Name": name, "Type": lb_type}
        if old.get("Scheme"):
            kwargs["Scheme"] = old["Scheme"]
        if old.get("IpAddressType"):
            kwargs["IpAddressType"] = old["IpAddressType"]
        if old.get("CustomerOwnedIpv4Pool"):
            kwargs["CustomerOwnedIpv4Pool"] = old["CustomerOwnedIpv4Pool"]
        if old.get("SecurityGroups") and lb_type != "gateway":
            kwargs["SecurityGroups"] = list(old["SecurityGroups"])
        mappings = []
        pinned = False
        for zone in old.get("AvailabilityZones") or []:
            mapping: dict[str, Any] = {"SubnetId": zone["SubnetId"]}
            for address in zone.get("LoadBalancerAddresses") or []:
                # Elastic IPs and fixed private addresses of an NLB: keep them, or clients break.
                if address.get("AllocationId"):
                    mapping["AllocationId"] = address["AllocationId"]
                    pinned = True
                if address.get("PrivateIPv4Address"):
                    mapping["PrivateIPv4Address"] = address["PrivateIPv4Address"]
                    pinned = True
                if address.get("IPv6Address"):
                    mapping["IPv6Address"] = address["IPv6Address"]
                    pinned = True
            mappings.append(mapping)
        if pinned:
            kwargs["SubnetMappings"] = mappings
        elif mappings:
            kwargs["Subnets"] = [m["SubnetId"] for m in mappings]
        tags = {**common.tag_map(self.data.get("tags")), ACTION_TAG: self.marker}
        created = self.call("CreateLoadBalancer", Tags=tag_list(tags), **kwargs)
        return dict(created["LoadBalancers"][0]), False

    def listeners(self, arn: str, groups: Mapping[str, str]) -> None:
        existing = {
            int(entry["Port"]): entry
            for entry in self.call("DescribeListeners", LoadBalancerArn=arn).get("Listeners") or []
        }
        for listener in self.data.get("listeners") or []:
            port = int(listener["Port"])
            current = existing.get(port)
            certificates = list(listener.get("Certificates") or [])
            default = [c for c in certificates if c.get("IsDefault")] or certificates[:1]
            if current is None:
                kwargs: dict[str, Any] = {
                    "LoadBalancerArn": arn,
                    "Port": port,
                    "DefaultActions": [_remap(a, groups) for a in listener["DefaultActions"]],
                }
                for key in ("Protocol", "SslPolicy", "AlpnPolicy", "MutualAuthentication"):
                    if listener.get(key):
                        kwargs[key] = listener[key]
                if listener.get("Protocol") not in ("HTTPS", "TLS"):
                    kwargs.pop("SslPolicy", None)
                if default:
                    kwargs["Certificates"] = [{"CertificateArn": default[0]["CertificateArn"]}]
                if listener.get("Tags"):
                    kwargs["Tags"] = [dict(t) for t in listener["Tags"]]
                current = self.call("CreateListener", **kwargs)["Listeners"][0]
            listener_arn = current["ListenerArn"]
            extra = [
                {"CertificateArn": c["CertificateArn"]}
                for c in certificates
                if not c.get("IsDefault") and (not default or c is not default[0])
            ]
            if extra:
                # Adding a certificate that is already there is a no-op in AWS: idempotent.
                self.call(
                    "AddListenerCertificates",
                    ListenerArn=listener_arn,
                    Certificates=extra,
                )
            self.rules(listener_arn, listener.get("Rules") or [], groups)

    def rules(
        self, listener_arn: str, rules: list[Mapping[str, Any]], groups: Mapping[str, str]
    ) -> None:
        present = {
            str(r["Priority"])
            for r in self.call("DescribeRules", ListenerArn=listener_arn).get("Rules") or []
        }
        for rule in sorted(rules, key=lambda r: int(r["Priority"])):
            if str(rule["Priority"]) in present:
                continue
            kwargs: dict[str, Any] = {
                "ListenerArn": listener_arn,
                "Priority": int(rule["Priority"]),
                "Conditions": [_condition(c) for c in rule.get("Conditions") or []],
                "Actions": [_remap(a, groups) for a in rule.get("Actions") or []],
            }
            if rule.get("Tags"):
                kwargs["Tags"] = [dict(t) for t in rule["Tags"]]
            self.call("CreateRule", **kwargs)


def _remap(action: Mapping[str, Any], groups: Mapping[str, str]) -> dict[str, Any]:
    """An action as recorded, pointing to the target groups that exist now."""
    result = {k: v for k, v in action.items() if v not in (None, [], {})}
    if result.get("TargetGroupArn"):
        result["TargetGroupArn"] = groups.get(result["TargetGroupArn"], result["TargetGroupArn"])
    forward = result.get("ForwardConfig")
    if forward:
        result["ForwardConfig"] = {
            **forward,
            "TargetGroups": [
                {**g, "TargetGroupArn": groups.get(g["TargetGroupArn"], g["TargetGroupArn"])}
                for g in forward.get("TargetGroups") or []
            ],
        }
    return result


def _condition(condition: Mapping[str, Any]) -> dict[str, Any]:
    # DescribeRules reports both the legacy ``Values`` and the ``*Config`` form; CreateRule
    # refuses a condition that has both.
    result = {k: v for k, v in condition.items() if v not in (None, [], {})}
    if any(k.endswith("Config") for k in result):
        result.pop("Values", None)
    return result
