"""Report figures (matplotlib) and the offline HTML template for `dvc plots`."""
