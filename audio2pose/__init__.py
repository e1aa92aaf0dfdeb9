"""Audio features, the audio -> expression + head pose network, speech synthesis and voice matching.

Not built yet: nothing here is exposed.
"""
