"""The authoring API: decorators, options and the calls workflow code makes.

Everything public here is re-exported by ``retold``; import it from there.
"""
