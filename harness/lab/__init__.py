"""A lab: devices on several hosts, shared by several people, on a Ray cluster (``pip install -e '.[lab]'``).

Each host with devices joins the cluster and runs one named, detached device actor per device, pinned to its own
node; a named, detached registry actor lists them for every driver. Ray is imported only here, lazily, so the
embedded default (one process, no Ray) never needs it.
"""
