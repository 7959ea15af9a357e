-- An aigc template (a Lua table; data only): `aigc -t capital -p country=France`,
-- or the dataset runner's template: `aigc run cases.jsonl -t capital`.
-- Copy it into $AIGC_HOME/templates/ (default ~/.config/aigc/templates/), or
-- point AIGC_TEMPLATES at this directory.
return {
  description = "The capital of a country, in one sentence",
  system = "You are a {{role}}. Answer in one sentence.",
  prompt = "What is the capital of {{country}}?",
  defaults = { role = "geographer" },
  params = { temperature = 0, max_tokens = 40 },
}
