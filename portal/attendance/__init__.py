"""Attendance: lab sessions, who was there, and the rates."""
