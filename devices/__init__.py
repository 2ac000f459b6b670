"""Devices: the Device protocol, its transports, the on-device runner and benchmark-output parsers."""
