"""The queue contract between message_service and the worker, and the one place that
stores messages. The worker imports this package (and message_service.models), nothing
else of message_service."""
