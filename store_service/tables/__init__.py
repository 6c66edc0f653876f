"""Open tables, one owner each (`owner.TableOwner`), kept by the registry (`registry.Tables`)."""
