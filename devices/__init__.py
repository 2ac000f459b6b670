"""Devices: a device is a transport (local, ssh, adb) and a backend (flopgap's runner or an official benchmark
binary); the inventory, the on-device runner, the typed trial result and the benchmark-output parsers."""
