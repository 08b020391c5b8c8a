"""Where each engine instance of a plan runs: its nodes, GPUs and ports.

Instances are packed onto nodes in order (prefill before decode), each on node-local GPUs
``0..n-1`` of its slice. A worker larger than a node takes whole nodes of its own. Ports are
unique per instance so that every instance of a plan can share one host's network.
"""

from __future__ import annotations

from dataclasses import dataclass

from servewise.profiles.schema import AggPlan, DisaggPlan, Worker
from servewise.render.errors import RenderError

ROLE_LABEL = {"agg": "worker", "prefill": "prefill", "decode": "decode"}
DISAGG_PORT_OFFSET = 100      # disaggregated workers listen on service_port + 100 + i; the router on service_port
NIXL_SIDE_CHANNEL_BASE = 5600  # vLLM VLLM_NIXL_SIDE_CHANNEL_PORT default (docs/features/nixl_connector_usage.md)
BOOTSTRAP_BASE = 8998         # SGLang --disaggregation-bootstrap-port default (sglang 0.5.x server args)
DIST_INIT_PORT = 20000        # rendezvous port of multi-node workers (torch.distributed / NCCL)
MAX_PORT = 65535


@dataclass(frozen=True)
class Instance:
    role: str                  # agg | prefill | decode
    index: int                 # 0-based within the role, across replicas
    worker: Worker
    first_node: int
    nnodes: int                # > 1: the instance spans whole nodes
    gpus: tuple[int, ...]      # node-local GPU ids it uses on each of its nodes
    port: int                  # HTTP port on its (first) node
    side_port: int             # NIXL side channel (vLLM) or bootstrap port (SGLang prefill)
    dist_port: int             # rendezvous port when nnodes > 1

    @property
    def name(self) -> str:
        return f"{ROLE_LABEL[self.role]}-{self.index}"

    @property
    def multinode(self) -> bool:
        return self.nnodes > 1

    @property
    def gpus_per_node(self) -> int:
        return len(self.gpus)

    @property
    def nodes(self) -> range:
        return range(self.first_node, self.first_node + self.nnodes)


def roles(plan: AggPlan | DisaggPlan) -> list[tuple[str, Worker]]:
    if isinstance(plan, AggPlan):
        return [("agg", plan.worker)]
    return [("prefill", plan.prefill), ("decode", plan.decode)]


def layout(plan: AggPlan | DisaggPlan, gpus_per_node: int, nodes: int, service_port: int) -> list[Instance]:
    """Place every instance of ``plan`` (replicas x workers per role)."""
    out: list[Instance] = []
    node, used = 0, 0
    port = service_port if plan.mode == "agg" else service_port + DISAGG_PORT_OFFSET
    count = sum(plan.replicas * w.workers for _, w in roles(plan))
    if port + count - 1 > MAX_PORT:
        raise RenderError(f"{service_port} leaves no room for the ports of the plan's {count} instance(s) "
                          f"({port} to {port + count - 1}, beyond {MAX_PORT}); use at most "
                          f"{MAX_PORT - (count - 1) - (port - service_port)}", field="deploy.service_port")
    side = NIXL_SIDE_CHANNEL_BASE
    for role, w in roles(plan):
        g = w.gpus_per_worker
        for i in range(plan.replicas * w.workers):
            if g > gpus_per_node:
                if g % gpus_per_node:
                    raise RenderError(f"plan.{'worker' if role == 'agg' else role}: a worker of {g} GPUs spans nodes "
                                      f"and must fill whole nodes of {gpus_per_node} GPUs")
                if used:
                    node, used = node + 1, 0
                span, gpus = g // gpus_per_node, tuple(range(gpus_per_node))
                first = node
                node, used = node + span, 0
            else:
                if used + g > gpus_per_node:
                    node, used = node + 1, 0
                span, gpus, first = 1, tuple(range(used, used + g)), node
                used += g
            if first + span > nodes:
                raise RenderError(f"the plan's workers do not pack onto {nodes} node(s) of {gpus_per_node} GPUs "
                                  f"(whole workers per node); add nodes or change the plan")
            out.append(Instance(role, i, w, first, span, gpus, port, side, DIST_INIT_PORT + len(out)))
            port += 1
            side += max(1, w.dp)
    return out


def nodes_used(instances: list[Instance]) -> int:
    return max(i.first_node + i.nnodes for i in instances)
