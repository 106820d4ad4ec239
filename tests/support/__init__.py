"""Helpers every test tier shares: polling (`support.polling`), free ports and background HTTP servers
(`support.net`), the fakes of the ports (`support.fakes`) and the emulated CLB (`support.clb`). One copy
each, so a fix to how the suite waits or serves lands everywhere."""
