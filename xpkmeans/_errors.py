"""The error raised for a value of the wrong type."""


class InputTypeError(TypeError, ValueError):
    """A parameter or input of the wrong type.

    Also a ``ValueError``, like scikit-learn's ``InvalidParameterError``, so
    code written for either library catches it.
    """
