"""digr.distill"""
