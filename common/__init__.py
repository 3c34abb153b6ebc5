"""What the project's commands share and the Dataflow job does not need:
the official clients pointed at the local stack or at Google (`clients`) and
the command-line conventions (`cli`)."""
