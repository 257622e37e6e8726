"""Functions the proxy benchmark runs in other interpreters (importable by name)."""

lst: list = []


def append_one():
    lst.append(1)


def length():
    return len(lst)


def reset():
    lst.clear()
