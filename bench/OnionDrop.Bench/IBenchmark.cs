namespace OnionDrop.Bench;

/// <summary>One benchmark; Program finds every implementation by reflection, so adding one is adding a file.</summary>
public interface IBenchmark
{
    /// <summary>The name given on the command line, e.g. "seal".</summary>
    string Name { get; }

    string Description { get; }

    /// <summary>
    /// Programs a run with these arguments starts (a name looked up on PATH, or an absolute path): checked before it begins, so a
    /// machine without them gets one line pointing at scripts/setup-deps instead of a stack trace midway.
    /// </summary>
    IReadOnlyList<string> Tools(string[] args) => [];

    /// <returns>Process exit code: non-zero when the run itself failed (not when a target was missed).</returns>
    Task<int> RunAsync(string[] args);
}
