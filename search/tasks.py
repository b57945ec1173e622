"""Background jobs of the search app (filled in by the search module).

schedule_message_embedding(message_id): called by conversations' services inside
transaction.on_commit after a message is stored; embeds it off the request path.
"""


def schedule_message_embedding(message_id) -> None:
    return None
