"""digr.saliency"""
