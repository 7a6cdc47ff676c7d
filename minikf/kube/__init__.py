"""The kubernetes platform's pieces: cluster connection and checks (client.py), resource builders."""
