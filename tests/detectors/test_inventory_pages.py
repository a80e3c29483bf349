"""Without a configured page size, the load balancer listings ask for their largest page.

moto (like any server free to choose its default page) answers the ELB listings 50 a page unless
asked for more; AWS's largest page is 400. 60 load balancers of each kind and 60 target groups
must cost one call per listing.
"""

from __future__ import annotations

from .conftest import REGION
from .test_load_balancer import _network


def test_elb_listings_take_one_page_of_up_to_400(seed, make_context, recorder):
    ec2, elbv2, elb = seed("ec2"), seed("elbv2"), seed("elb")
    vpc, subnets = _network(ec2)
    listeners = [{"Protocol": "HTTP", "LoadBalancerPort": 80, "InstancePort": 80}]
    for n in range(60):
        elbv2.create_load_balancer(Name=f"alb-{n}", Subnets=subnets)
        elbv2.create_target_group(Name=f"tg-{n}", Protocol="HTTP", Port=80, VpcId=vpc)
        elb.create_load_balancer(
            LoadBalancerName=f"clb-{n}", Listeners=listeners, AvailabilityZones=[f"{REGION}a"]
        )

    inventory = make_context().inventory

    assert len(inventory.load_balancers()) == 60
    assert len(inventory.target_groups()) == 60
    assert len(inventory.classic_load_balancers()) == 60
    assert recorder.count(service="elbv2", operation="DescribeLoadBalancers") == 1
    assert recorder.count(service="elbv2", operation="DescribeTargetGroups") == 1
    assert recorder.count(service="elb", operation="DescribeLoadBalancers") == 1
