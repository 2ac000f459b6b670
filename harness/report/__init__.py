"""What people read: plots, the HTML report, and the helpers the notebooks import."""
