"""Scenarios: the exam to rehearse (model.py), read from TOML and checked (loading.py), turned into a
plan per simulated user (schedule.py); the shipped scenarios are the NAME.toml files here."""
