"""digr.cli"""
