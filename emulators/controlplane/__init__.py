"""A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager) for tests and demos.

Built from pinned upstream modules by `scripts/build-k8s.sh`; `binaries.py` finds them, `pki.py` makes
the certificates and keys, `launcher.py` runs the processes, `cluster.py` adds our node agent.
"""
