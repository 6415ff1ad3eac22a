"""One guarded call as a declared list of stages over one typed call state, run by one loop.

    read -> audit_request -> check_inputs -> decide -> apply -> generate -> hash_outputs
         -> fingerprint_outputs -> screen_outputs -> label_outputs -> watermark_outputs -> sign
         -> (finish) audit_outcome -> attach

The Guard declares the list (guardrail.guard.Guard.pipeline); `CallPipeline.run` times each stage,
stops at a deny or an error, and sends every call on record through the same finish.
"""

from guardrail.pipeline.decide import Verdict, decide, decider
from guardrail.pipeline.evidence import Checks, Evidence
from guardrail.pipeline.runner import CallPipeline
from guardrail.pipeline.state import Caller, CallState, Stage

__all__ = ["CallPipeline", "CallState", "Caller", "Checks", "Evidence", "Stage", "Verdict", "decide", "decider"]
