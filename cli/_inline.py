"""The CLI hosts the functions in its own process: `invoker = "inline"` means the local runtime's InlineInvoker.

`cli.main.main` calls `install_inline_invoker()` before running a command, so `clb-direct invoke router ...`
or `clb-direct replay` with `CLB_DIRECT_INVOKER=inline` run every step they dispatch right here, with SCF's
retry semantics; the test suite installs the same. Production code never imports the runtime: it reaches
this invoker only through `shared.adapters.invokers.build_invoker`.
"""

from __future__ import annotations

from emulators.runtime.inline import EntryPointHandlers, InlineInvoker
from shared.adapters.invokers import encode_payload, provide_in_process_invoker
from shared.ports import Invoker


def install_inline_invoker() -> None:
    handlers = EntryPointHandlers()

    def build() -> Invoker:
        return InlineInvoker(handlers, encode=encode_payload)

    provide_in_process_invoker(build)
