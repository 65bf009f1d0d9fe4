"""digr.attacks"""
