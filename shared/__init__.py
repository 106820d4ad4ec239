"""clb-direct's SCF layer: domain logic, planners, steps, gateways (CLB, Kubernetes, KV store), models, logging.

Shipped to Tencent SCF as a layer; every function under `functions/` is a thin handler over this package.
"""
