"""Rollback of a deleted classic load balancer: the same name (so the same DNS name prefix),
listeners, health check, attributes, policies, instances and tags, from ``lb_classic.record``'s
data.

Called by ``cleanup.load_balancer.DeleteLoadBalancer.rollback``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudsweep import aws
from cloudsweep.cleanup import common
from cloudsweep.cleanup.base import ACTION_TAG, Outcome
from cloudsweep.cleanup.lb_common import (
    CLASSIC,
    CLASSIC_POLICY_PREFIXES,
    Restore,
    name_taken,
    not_found,
    tag_list,
)


class ClassicRestore(Restore):
    """Rebuild a classic load balancer (same name, so same DNS name prefix) from its record."""

    service = CLASSIC

    def run(self) -> Outcome:
        old = self.data["load_balancer"]
        name = old["LoadBalancerName"]
        reused = False
        try:
            found = self.call("DescribeLoadBalancers", LoadBalancerNames=[name])[
                "LoadBalancerDescriptions"
            ]
        except aws.AwsError as exc:
            if not not_found(exc):
                raise
            found = []
        if found:
            tags = self.call("DescribeTags", LoadBalancerNames=[name])
            mine = any(
                common.tag_map(entry.get("Tags")).get(ACTION_TAG) == self.marker
                for entry in tags.get("TagDescriptions") or []
            )
            if not mine:
                raise name_taken(self.ctx, CLASSIC, name)
            reused = True
        else:
            self.create(old)
        self.configure(old)
        lb = self.call("DescribeLoadBalancers", LoadBalancerNames=[name])[
            "LoadBalancerDescriptions"
        ][0]
        return Outcome(
            {"load_balancer_name": name, "dns_name": lb.get("DNSName")},
            already_done=reused,
            note=(
                f"recreated classic load balancer {name}, DNS name {lb.get('DNSName')}; AWS "
                f"cannot reuse the old DNS name ({old.get('DNSName')}): update DNS records and "
                "clients that used it" + "".join(f"; {n}" for n in self.notes)
            ),
        )

    def create(self, old: Mapping[str, Any]) -> None:
        listeners = []
        for description in old.get("ListenerDescriptions") or []:
            listener = description["Listener"]
            listeners.append(
                {
                    k: listener[k]
                    for k in (
                        "Protocol",
                        "LoadBalancerPort",
                        "InstanceProtocol",
                        "InstancePort",
                        "SSLCertificateId",
                    )
                    if listener.get(k) not in (None, "")
                }
            )
        kwargs: dict[str, Any] = {
            "LoadBalancerName": old["LoadBalancerName"],
            "Listeners": listeners,
        }
        if old.get("Subnets"):
            # In a VPC the subnets decide the zones; AWS refuses both at once.
            kwargs["Subnets"] = list(old["Subnets"])
            if old.get("SecurityGroups"):
                kwargs["SecurityGroups"] = list(old["SecurityGroups"])
        else:
            kwargs["AvailabilityZones"] = list(old.get("AvailabilityZones") or [])
        if old.get("Scheme") == "internal":
            kwargs["Scheme"] = "internal"
        tags = {**common.tag_map(self.data.get("tags")), ACTION_TAG: self.marker}
        self.call("CreateLoadBalancer", Tags=tag_list(tags), **kwargs)

    def configure(self, old: Mapping[str, Any]) -> None:
        # Every call below sets a whole value, so repeating it after a crash is harmless.
        name = old["LoadBalancerName"]
        if old.get("HealthCheck"):
            self.call(
                "ConfigureHealthCheck",
                LoadBalancerName=name,
                HealthCheck=dict(old["HealthCheck"]),
            )
        attributes = {
            k: v for k, v in (self.data.get("attributes") or {}).items() if v not in (None, [], {})
        }
        if attributes:
            self.call(
                "ModifyLoadBalancerAttributes",
                LoadBalancerName=name,
                LoadBalancerAttributes=attributes,
            )
        self.policies(old)
        instances = [{"InstanceId": i["InstanceId"]} for i in old.get("Instances") or []]
        if instances:
            try:
                self.call(
                    "RegisterInstancesWithLoadBalancer",
                    LoadBalancerName=name,
                    Instances=instances,
                )
            except aws.AwsError as exc:
                if exc.kind.retryable:
                    raise
                self.notes.append(f"could not register the recorded instances again: {exc}")

    def policies(self, old: Mapping[str, Any]) -> None:
        name = old["LoadBalancerName"]
        current = self.call("DescribeLoadBalancerPolicies", LoadBalancerName=name).get(
            "PolicyDescriptions", []
        )
        present = {p["PolicyName"] for p in current}
        recorded = old.get("Policies") or {}
        for policy in recorded.get("LBCookieStickinessPolicies") or []:
            if policy["PolicyName"] not in present:
                kwargs = {"LoadBalancerName": name, "PolicyName": policy["PolicyName"]}
                if policy.get("CookieExpirationPeriod") is not None:
                    kwargs["CookieExpirationPeriod"] = policy["CookieExpirationPeriod"]
                self.call("CreateLBCookieStickinessPolicy", **kwargs)
                present.add(policy["PolicyName"])
        for policy in recorded.get("AppCookieStickinessPolicies") or []:
            if policy["PolicyName"] not in present:
                self.call(
                    "CreateAppCookieStickinessPolicy",
                    LoadBalancerName=name,
                    PolicyName=policy["PolicyName"],
                    CookieName=policy["CookieName"],
                )
                present.add(policy["PolicyName"])
        for policy in self.data.get("policies") or []:
            policy_name = policy["PolicyName"]
            if policy_name in present or policy_name.startswith(CLASSIC_POLICY_PREFIXES):
                continue
            self.call(
                "CreateLoadBalancerPolicy",
                LoadBalancerName=name,
                PolicyName=policy_name,
                PolicyTypeName=policy["PolicyTypeName"],
                PolicyAttributes=[
                    {"AttributeName": a["AttributeName"], "AttributeValue": a["AttributeValue"]}
                    for a in policy.get("PolicyAttributeDescriptions") or []
                ],
            )
            present.add(policy_name)
        for description in old.get("ListenerDescriptions") or []:
            names = list(description.get("PolicyNames") or [])
            if names:
                self.call(
                    "SetLoadBalancerPoliciesOfListener",
                    LoadBalancerName=name,
                    LoadBalancerPort=description["Listener"]["LoadBalancerPort"],
                    PolicyNames=names,
                )
        for backend in old.get("BackendServerDescriptions") or []:
            names = list(backend.get("PolicyNames") or [])
            if names:
                self.call(
                    "SetLoadBalancerPoliciesForBackendServer",
                    LoadBalancerName=name,
                    InstancePort=backend["InstancePort"],
                    PolicyNames=names,
                )
