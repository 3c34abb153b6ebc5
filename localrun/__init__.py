"""Running the streaming job on this machine, against the local emulator stack.

`python -m localrun` runs the same graph as Dataflow (`pipeline.graph`) on
Beam's BundleBasedDirectRunner, with what only a local run needs: the local
stack's clients (anonymous, loopback only), a bigger Pub/Sub pull
(`pubsub_pull`), crash recovery by replaying the subscription
(`recovery`), a run duration, and the counters at the end. None of it is
shipped to Dataflow workers.
"""
