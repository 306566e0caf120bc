"""Who a voice is: speaker encoders, voice profiles, blends and shifts."""
