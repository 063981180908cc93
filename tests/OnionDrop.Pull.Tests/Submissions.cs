using System.Diagnostics;
using OnionDrop.Sealing;
using OnionDrop.Storage;

namespace OnionDrop.Pull.Tests;

/// <summary>Real sealed submissions in a real store, as the upload handler makes them, with content derived from a number.</summary>
internal static class Submissions
{
    public static string FileName(int n) => $"document-{n}.bin";
    public static string Message(int n) => $"message number {n}";

    public static byte[] Content(int n, int size)
    {
        var bytes = new byte[size];
        new Random(n).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Seals and commits <paramref name="count"/> submissions (numbered from <paramref name="first"/>); returns id → number.</summary>
    public static async Task<Dictionary<string, int>> CreateAsync(ISealedBlobStore store, RecipientPublicKey recipient, int count, Func<int, int> size, int first = 0)
    {
        var ids = new Dictionary<string, int>();
        var gate = new object();
        await Parallel.ForEachAsync(Enumerable.Range(first, count), new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (n, ct) =>
        {
            await using var writer = store.BeginSubmission();
            await using (var sealer = new SubmissionSealer(writer.Ciphertext, [recipient]))
            {
                await sealer.BeginFileAsync(FileName(n), "application/octet-stream", ct);
                await sealer.WriteAsync(Content(n, size(n)), ct);
                await sealer.EndFileAsync(ct);
                await sealer.CompleteAsync(writer.Id, Message(n), DateTimeOffset.UtcNow, ct);
            }
            await writer.CommitAsync(ct);
            lock (gate) ids[writer.Id] = n;
        });
        return ids;
    }

    /// <summary>Pids of the processes whose parent is <paramref name="parent"/> and whose name is <paramref name="name"/>.</summary>
    public static IEnumerable<int> Children(int parent, string name)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; }
            // pid (comm) state ppid ...
            var close = stat.LastIndexOf(')');
            var comm = stat[(stat.IndexOf('(') + 1)..close];
            var fields = stat[(close + 2)..].Split(' ');
            if (comm == name && int.Parse(fields[1]) == parent) yield return pid;
        }
    }
}
