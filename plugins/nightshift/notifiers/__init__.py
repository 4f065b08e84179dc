from nightshift.notifiers.email import FailureEmailNotifier

__all__ = ["FailureEmailNotifier"]
