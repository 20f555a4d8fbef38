"""fusionrec's library: everything the pipeline does, with no Airflow in it."""
