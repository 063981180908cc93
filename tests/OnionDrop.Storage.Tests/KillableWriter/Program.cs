using OnionDrop.Storage;

// usage: KillableWriter DATA_DIR COMMITTED_COUNT
// Commits COMMITTED_COUNT small submissions (printing "committed ID"), then begins one more and writes to it
// without end, printing "streaming ID" once its first megabyte has reached the file. The test kills it -9.
using var store = SealedBlobStore.Open(args[0]);
var chunk = new byte[64 * 1024];
new Random(7).NextBytes(chunk);
for (var i = 0; i < int.Parse(args[1]); i++)
{
    await using var done = store.BeginSubmission();
    await done.Ciphertext.WriteAsync(chunk);
    Console.WriteLine($"committed {(await done.CommitAsync()).Id}");
}
await using var writer = store.BeginSubmission();
for (long written = 0; ; written += chunk.Length)
{
    await writer.Ciphertext.WriteAsync(chunk);
    if (written == 16 * chunk.Length)
    {
        await writer.Ciphertext.FlushAsync();
        Console.WriteLine($"streaming {writer.Id}");
    }
    if (written > 16 * chunk.Length) await Task.Delay(50);
}
